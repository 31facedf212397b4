// A loopback HTTP server over a folder (127.0.0.1 only), for the tests that load from URLs: each
// file by its path, 404 for what is not there; `requests` lists the paths asked for, in order.
import { createServer } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface FolderServer {
  base: string;
  requests: string[];
  close(): Promise<void>;
}

export async function serveFolder(root: string): Promise<FolderServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url!);
    const f = join(root, decodeURIComponent(req.url!.replace(/^\//, '')));
    if (f.includes('..') || !existsSync(f) || !statSync(f).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const b = readFileSync(f);
    res.writeHead(200, { 'content-length': b.length }).end(b);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    base: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
