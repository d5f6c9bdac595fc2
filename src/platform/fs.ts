/**
 * The one module that knows how each runtime reads and writes files. Deno uses `Deno.*`, Node uses
 * `node:fs/promises`; in a browser every file operation throws (the web app hands bytes over directly).
 * Nothing else in webqat branches on the runtime for files.
 */

type Runtime = 'deno' | 'node' | 'browser';

interface DenoFile {
  write(p: Uint8Array): Promise<number>;
  syncData?(): Promise<void>;
  close(): void;
}
interface DenoFs {
  readFile(path: string): Promise<Uint8Array>;
  open(path: string, opts: { write: boolean; create: boolean; truncate: boolean }): Promise<DenoFile>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  stat(path: string): Promise<{ size: number; isFile: boolean; isDirectory: boolean }>;
  readDir(path: string): AsyncIterable<{ name: string }>;
  cwd(): string;
  pid: number;
  errors: { NotFound: new (...a: unknown[]) => Error };
}

function runtime(): Runtime {
  const g = globalThis as Record<string, unknown>;
  if (typeof g.Deno !== 'undefined') return 'deno';
  const proc = g.process as { versions?: { node?: string } } | undefined;
  if (proc?.versions?.node) return 'node';
  return 'browser';
}

function deno(): DenoFs {
  return (globalThis as unknown as { Deno: DenoFs }).Deno;
}

type NodeFs = typeof import('node:fs/promises');
let nodeFs: NodeFs | null = null;
async function node(): Promise<NodeFs> {
  if (!nodeFs) {
    const name = 'node:fs/promises'; // hidden from bundlers: only Node loads it
    nodeFs = (await import(/* @vite-ignore */ name)) as NodeFs;
  }
  return nodeFs;
}

function noFiles(what: string, path: string): Error {
  return new Error(
    `webqat: ${what}('${path}'): there is no file system in the browser; pass the file's bytes directly (e.g. from a file input)`,
  );
}

function isNotFound(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const rt = runtime();
  if (rt === 'deno' && e instanceof deno().errors.NotFound) return true;
  return (e as { code?: string }).code === 'ENOENT';
}

/** Error for a file that is not there, naming it. */
export class FileNotFoundError extends Error {
  constructor(readonly path: string, what = 'file') {
    super(`webqat: ${what} not found: ${path}`);
    this.name = 'FileNotFoundError';
  }
}

/** The whole file. Throws `FileNotFoundError` (naming the path) when it does not exist. */
export async function readFile(path: string): Promise<Uint8Array> {
  const rt = runtime();
  if (rt === 'browser') throw noFiles('readFile', path);
  try {
    if (rt === 'deno') return await deno().readFile(path);
    const buf = await (await node()).readFile(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    if (isNotFound(e)) throw new FileNotFoundError(path);
    throw new Error(`webqat: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Size in bytes, or null when the path does not exist. */
export async function fileSize(path: string): Promise<number | null> {
  const rt = runtime();
  if (rt === 'browser') throw noFiles('fileSize', path);
  try {
    if (rt === 'deno') return (await deno().stat(path)).size;
    return (await (await node()).stat(path)).size;
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

/** Whether a file or directory exists at `path`. */
export async function exists(path: string): Promise<boolean> {
  const rt = runtime();
  if (rt === 'browser') return false;
  try {
    if (rt === 'deno') await deno().stat(path);
    else await (await node()).stat(path);
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Whether `path` is a directory (false when it does not exist). */
export async function isDirectory(path: string): Promise<boolean> {
  const rt = runtime();
  if (rt === 'browser') return false;
  try {
    if (rt === 'deno') return (await deno().stat(path)).isDirectory;
    return (await (await node()).stat(path)).isDirectory();
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Names of the entries of a directory (unsorted order made sorted). */
export async function listDir(path: string): Promise<string[]> {
  const rt = runtime();
  if (rt === 'browser') throw noFiles('listDir', path);
  const names: string[] = [];
  try {
    if (rt === 'deno') for await (const e of deno().readDir(path)) names.push(e.name);
    else names.push(...(await (await node()).readdir(path)));
  } catch (e) {
    if (isNotFound(e)) throw new FileNotFoundError(path, 'directory');
    throw e;
  }
  return names.sort();
}

let tmpCounter = 0;

/**
 * Write a file atomically: the bytes go to a temporary file in the same directory, are flushed to
 * disk (where the runtime can), and the temporary file is renamed over `path`. A reader never sees
 * a half-written file, and a crash leaves the previous file in place.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const rt = runtime();
  if (rt === 'browser') throw noFiles('writeFileAtomic', path);
  const slash = path.lastIndexOf('/');
  const dir = slash >= 0 ? path.slice(0, slash + 1) : '';
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  const pid = rt === 'deno' ? deno().pid : (globalThis as unknown as { process: { pid: number } }).process.pid;
  const tmp = `${dir}.${base}.tmp-${pid}-${Date.now()}-${tmpCounter++}`;
  try {
    if (rt === 'deno') {
      const d = deno();
      const f = await d.open(tmp, { write: true, create: true, truncate: true });
      try {
        let off = 0;
        while (off < bytes.length) off += await f.write(bytes.subarray(off));
        if (f.syncData) await f.syncData();
      } finally {
        f.close();
      }
      await d.rename(tmp, path);
    } else {
      const fs = await node();
      const fh = await fs.open(tmp, 'w');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, path);
    }
  } catch (e) {
    await removeQuietly(tmp);
    if (isNotFound(e)) throw new Error(`webqat: cannot write ${path}: its directory does not exist`);
    throw new Error(`webqat: cannot write ${path}: ${(e as Error).message}`);
  }
}

async function removeQuietly(path: string): Promise<void> {
  try {
    if (runtime() === 'deno') await deno().remove(path);
    else await (await node()).rm(path, { force: true });
  } catch {
    // nothing to clean up
  }
}

/** Delete a file (no error when it does not exist). */
export async function removeFile(path: string): Promise<void> {
  if (runtime() === 'browser') throw noFiles('removeFile', path);
  await removeQuietly(path);
}

/** The current working directory ('' in the browser). */
export function cwd(): string {
  const rt = runtime();
  if (rt === 'deno') return deno().cwd();
  if (rt === 'node') return (globalThis as unknown as { process: { cwd(): string } }).process.cwd();
  return '';
}

/** Join path pieces with '/', collapsing duplicate separators. */
export function joinPath(...parts: string[]): string {
  const p = parts.filter((s) => s.length > 0).join('/');
  return p.replace(/\/{2,}/g, '/');
}

/** A `file:` URL as a local path (null for other schemes). */
export function fileUrlToPath(url: string | URL): string | null {
  const u = typeof url === 'string' ? new URL(url) : url;
  if (u.protocol !== 'file:') return null;
  return decodeURIComponent(u.pathname);
}

/** True when the first two bytes are the gzip magic 0x1f 0x8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Decompress gzip data with the platform's DecompressionStream (Deno, Node >= 18, Chromium). */
export async function gunzip(bytes: Uint8Array, what = 'data'): Promise<Uint8Array> {
  const DS = (globalThis as { DecompressionStream?: typeof DecompressionStream }).DecompressionStream;
  if (!DS) throw new Error(`webqat: gunzip(${what}): this runtime has no DecompressionStream`);
  try {
    const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DS('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new Error(`webqat: ${what}: corrupt gzip data (${(e as Error).message})`);
  }
}

/** The runtime name for messages ('deno', 'node' or 'browser'). */
export function platformName(): Runtime {
  return runtime();
}
