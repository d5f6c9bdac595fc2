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
  removeSync(path: string): void;
  addSignalListener(sig: string, fn: () => void): void;
  removeSignalListener(sig: string, fn: () => void): void;
  exit(code: number): never;
  build: { os: string };
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

function pidOf(): number {
  return runtime() === 'deno' ? deno().pid : (globalThis as unknown as { process: { pid: number } }).process.pid;
}

function splitPath(path: string): { dir: string; base: string } {
  const slash = path.lastIndexOf('/');
  return { dir: slash >= 0 ? path.slice(0, slash + 1) : '', base: slash >= 0 ? path.slice(slash + 1) : path };
}

// ---------------------------------------------------------------- temporary files and signals

/** Temporary files of writes in flight: removed if the process is interrupted (SIGINT / SIGTERM). */
const inFlight = new Set<string>();
const SIGNALS = [['SIGINT', 130], ['SIGTERM', 143]] as const;
const handlers = new Map<string, () => void>();
// deno-lint-ignore no-explicit-any
let nodeFsSync: any = null;

function removeInFlightSync(): void {
  for (const t of inFlight) {
    try {
      if (runtime() === 'deno') deno().removeSync(t);
      else nodeFsSync?.rmSync(t, { force: true });
    } catch {
      // already gone
    }
  }
  inFlight.clear();
}

/** While a write is in flight, SIGINT/SIGTERM remove its temporary file, then exit as the signal would (130 / 143). */
function armSignals(): void {
  if (handlers.size) return;
  const rt = runtime();
  for (const [sig, code] of SIGNALS) {
    const fn = () => {
      removeInFlightSync();
      if (rt === 'deno') deno().exit(code);
      else (globalThis as unknown as { process: { exit(c: number): never } }).process.exit(code);
    };
    try {
      if (rt === 'deno') {
        if (deno().build.os === 'windows' && sig === 'SIGTERM') continue;
        deno().addSignalListener(sig, fn);
      } else (globalThis as unknown as { process: { on(s: string, f: () => void): void } }).process.on(sig, fn);
      handlers.set(sig, fn);
    } catch {
      // this platform cannot listen for the signal
    }
  }
}

function disarmSignals(): void {
  if (inFlight.size) return;
  const rt = runtime();
  for (const [sig, fn] of handlers) {
    try {
      if (rt === 'deno') deno().removeSignalListener(sig, fn);
      else (globalThis as unknown as { process: { off(s: string, f: () => void): void } }).process.off(sig, fn);
    } catch {
      // ignore
    }
  }
  handlers.clear();
}

/** True when the process `pid` is alive; on systems without /proc, unknown = assumed dead unless it is us. */
async function pidAlive(pid: number): Promise<boolean> {
  if (pid === pidOf()) return true;
  if (!(await isDirectory('/proc/self'))) return false;
  return await exists(`/proc/${pid}`);
}

/**
 * Remove stale temporary files of earlier interrupted writes to `path` (`.NAME.tmp-PID-…` whose
 * process is gone, or ours that are not in flight). Returns how many were removed.
 */
export async function removeStaleTempFiles(path: string): Promise<number> {
  if (runtime() === 'browser') return 0;
  const { dir, base } = splitPath(path);
  const prefix = `.${base}.tmp-`;
  let names: string[];
  try {
    names = await listDir(dir || '.');
  } catch {
    return 0;
  }
  let removed = 0;
  for (const n of names) {
    if (!n.startsWith(prefix)) continue;
    const m = /^(\d+)-/.exec(n.slice(prefix.length));
    if (!m) continue;
    const full = `${dir}${n}`;
    const pid = Number(m[1]);
    if (inFlight.has(full) || (pid !== pidOf() && (await pidAlive(pid)))) continue;
    await removeQuietly(full);
    removed++;
  }
  return removed;
}

/**
 * Write a file atomically: the bytes go to a temporary file in the same directory, are flushed to
 * disk (where the runtime can), and the temporary file is renamed over `path`. A reader never sees
 * a half-written file, and a crash leaves the previous file in place. Stale temporary files of
 * earlier interrupted writes to the same path are removed first; SIGINT / SIGTERM during the write
 * remove this one.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const rt = runtime();
  if (rt === 'browser') throw noFiles('writeFileAtomic', path);
  const { dir, base } = splitPath(path);
  const tmp = `${dir}.${base}.tmp-${pidOf()}-${Date.now()}-${tmpCounter++}`;
  if (rt === 'node' && !nodeFsSync) {
    const name = 'node:fs';
    nodeFsSync = await import(/* @vite-ignore */ name);
  }
  inFlight.add(tmp);
  armSignals();
  try {
    await removeStaleTempFiles(path);
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
    throw await writeError(path, e);
  } finally {
    inFlight.delete(tmp);
    disarmSignals();
  }
}

/** A clear error for a failed write to `path`: a missing directory, a file where a directory should be, or the OS message. */
async function writeError(path: string, e: unknown): Promise<Error> {
  const { dir } = splitPath(path);
  const d = dir || './';
  const msg = (e as Error).message ?? String(e);
  const kind = async (p: string): Promise<'missing' | 'dir' | 'file' | 'notdir'> => {
    try {
      if (runtime() === 'deno') return (await deno().stat(p)).isDirectory ? 'dir' : 'file';
      return (await (await node()).stat(p)).isDirectory() ? 'dir' : 'file';
    } catch (err) {
      return isNotFound(err) ? 'missing' : 'notdir';
    }
  };
  const dk = await kind(d.length > 1 ? d.replace(/\/$/, '') : d);
  if (dk === 'missing') return new Error(`webqat: cannot write ${path}: its directory ${d} does not exist`);
  if (dk !== 'dir') return new Error(`webqat: cannot write ${path}: ${d} is not a directory`);
  if ((await kind(path)) === 'dir') return new Error(`webqat: cannot write ${path}: it is a directory`);
  return new Error(`webqat: cannot write ${path}: files cannot be created in ${d} (${msg})`);
}

/**
 * Check before long work that `path` can be written: its directory exists and accepts a new file
 * (a probe file is created and removed), and `path` is not a directory. Throws the error a write
 * would give.
 */
export async function checkWritable(path: string): Promise<void> {
  if (runtime() === 'browser') throw noFiles('checkWritable', path);
  const { dir, base } = splitPath(path);
  const probe = `${dir}.${base}.tmp-${pidOf()}-probe-${tmpCounter++}`;
  try {
    if (await isDirectory(path).catch(() => false)) throw new Error('is a directory');
    if (runtime() === 'deno') (await deno().open(probe, { write: true, create: true, truncate: true })).close();
    else await (await (await node()).open(probe, 'w')).close();
  } catch (e) {
    throw await writeError(path, e);
  } finally {
    await removeQuietly(probe);
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
