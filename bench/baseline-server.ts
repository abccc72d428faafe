// The baselines of warm-reviews, on the same TLS settings as pullguard's server (same certificate,
// SERVER_TLS: TLS 1.2+, its ciphers, in its order), whose POST /validate only parses the body and echoes an allow: on fastify (what
// pullguard's server was built on), and on bare node:https (what it answers reviews with now).

import Fastify, { type FastifyInstance } from 'fastify';
import { createServer, type Server } from 'node:https';
import { SERVER_TLS } from '../src/server/tls.ts';

export async function buildBaseline(tls: { key: string; cert: string }): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: 16 * 1024 * 1024,
    https: { ...tls, ...SERVER_TLS },
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

export function buildNodeBaseline(tls: { key: string; cert: string }): Server {
  return createServer({ ...tls, ...SERVER_TLS }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { request?: { uid?: unknown } } | null;
      const uid = body?.request?.uid;
      const text = JSON.stringify({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        response: { uid: typeof uid === 'string' ? uid : '', allowed: true },
      });
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    });
  });
}
