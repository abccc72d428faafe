// `pullguard check` put together: the pod check built from the configuration as the webhook's is,
// every group of image uses checked under one deadline for the whole command.

import type { Config } from '../config/schema.ts';
import type { Deadline } from '../deadline.ts';
import type { Finding, ImageUse } from '../findings.ts';
import type { Platform } from '../platform/index.ts';
import type { PodSpecSite } from '../workload/images.ts';
import { buildPodCheck, type BuiltPodCheck } from './build.ts';

export interface Group {
  uses: ImageUse[];
  /** the pod spec the uses come from; none for images named on the command line */
  site?: PodSpecSite;
}

export interface CheckSetup {
  /** namespace of objects that name none */
  namespace: string;
  /** when the whole command must be done */
  deadline: Deadline;
  /** called as each image use gets its finding (progress) */
  onSettled?: () => void;
}

/** Reads the files and finds the cluster (errors here are the user's to fix); checking starts later. */
export function prepareCheck(
  config: Config,
  setup: {
    env: NodeJS.ProcessEnv;
    dockerConfigs: readonly string[];
    /** config.platforms, parsed with the flags */
    platforms: readonly Platform[];
    context?: string;
  },
): Promise<BuiltPodCheck> {
  return buildPodCheck(config, { ...setup, cli: true });
}

/** Every group checked in parallel, all by the one deadline; the pod check is closed afterwards. */
export async function checkGroups(built: BuiltPodCheck, groups: Group[], setup: CheckSetup): Promise<Finding[]> {
  const { podCheck } = built;
  try {
    const results = await Promise.all(
      groups.map((group) =>
        podCheck.check(
          { ...(group.site ? { site: group.site } : {}), namespace: group.site?.namespace ?? setup.namespace },
          group.uses,
          { deadline: setup.deadline, ...(setup.onSettled ? { onSettled: setup.onSettled } : {}) },
        ),
      ),
    );
    return results.flat();
  } finally {
    await podCheck.close();
  }
}
