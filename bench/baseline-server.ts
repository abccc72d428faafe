// The baseline of warm-reviews: fastify on the same TLS settings as pullguard's server (same
// certificate, TLS 1.2+), whose POST /validate only parses the body and echoes an allow.

import Fastify, { type FastifyInstance } from 'fastify';

export async function buildBaseline(tls: { key: string; cert: string }): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024 * 1024,
    https: { ...tls, minVersion: 'TLSv1.2' as const },
  }) as unknown as FastifyInstance;
  app.post('/validate', async (request) => {
    const uid = (request.body as { request?: { uid?: unknown } } | null)?.request?.uid;
    return {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: typeof uid === 'string' ? uid : '', allowed: true },
    };
  });
  return app;
}
