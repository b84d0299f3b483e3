// `ssddpm serve`: a static file server for a built site on this machine, with the headers that make the page
// cross-origin isolated (Cross-Origin-Opener-Policy / Cross-Origin-Embedder-Policy), which multi-threaded
// WebAssembly (SharedArrayBuffer) needs. node:http only; files are revalidated by ETag on every load.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';

export const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/** The headers of every response: cross-origin isolation, and revalidation of cached files. */
export const SITE_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-cache',
};

export interface SiteServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { ...SITE_HEADERS, 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

function handler(root: string) {
  return (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET and HEAD');
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      return send(res, 400, 'bad path');
    }
    let file = resolve(root, `.${path}`);
    if (file !== root && !file.startsWith(root + sep)) return send(res, 403, 'outside the site');
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file) || !statSync(file).isFile()) return send(res, 404, `not found: ${path}`);
    const stat = statSync(file);
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    const headers = { ...SITE_HEADERS, ETag: etag, 'Content-Type': MIME_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream' };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      return res.end();
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(stat.size) });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).on('error', () => res.destroy()).pipe(res);
  };
}

/** Serves `site` (a folder built by `ssddpm web`) on 127.0.0.1:`port` (0: any free port). */
export function serveSite(site: string, opts: { port?: number; host?: string } = {}): Promise<SiteServer> {
  const root = resolve(site);
  if (!existsSync(root) || !statSync(root).isDirectory()) return Promise.reject(new Error(`${site}: no such folder; build the site first (ssddpm web --out ${site})`));
  if (!existsSync(join(root, 'index.html'))) return Promise.reject(new Error(`${site}: not a built site (no index.html); build it with ssddpm web --out ${site}`));
  const port = opts.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) return Promise.reject(new RangeError(`port must be an integer in 0..65535, got ${port}`));
  const host = opts.host ?? '127.0.0.1';
  const server = createServer(handler(root));
  return new Promise((resolvePromise, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new Error(`port ${port} is in use; choose another with --port`) : err));
    server.listen(port, host, () => {
      const actual = (server.address() as AddressInfo).port;
      resolvePromise({
        url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}/`,
        port: actual,
        close: () =>
          new Promise((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
