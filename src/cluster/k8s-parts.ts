// The parts of @kubernetes/client-node pullguard uses, by name: the bundle (scripts/build.ts) then
// carries these and what they need, not every API group the package's index re-exports.
export {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  KubeConfig,
  Observable,
  RequestContext,
} from '@kubernetes/client-node';
