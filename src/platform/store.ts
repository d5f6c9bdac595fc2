/**
 * A small persistent key → JSON store, the one place that knows where each runtime keeps it:
 *  - Deno and Node: one JSON file per store name under the user's cache folder
 *    (`$WEBQAT_CACHE_DIR`, else `$XDG_CACHE_HOME/webqat`, else `~/.cache/webqat`), written atomically;
 *  - the browser: an IndexedDB database `webqat`, object store `kv`, key = the store name.
 * Used by the kernel autotuner (src/gpu/tune.ts) for its cache of measured winners.
 */
import { joinPath, platformName, readFile, writeFileAtomic } from './fs.ts';

function env(name: string): string | undefined {
  const g = globalThis as unknown as {
    Deno?: { env: { get(k: string): string | undefined } };
    process?: { env: Record<string, string | undefined> };
  };
  try {
    if (g.Deno) return g.Deno.env.get(name);
    return g.process?.env?.[name];
  } catch {
    return undefined; // Deno without --allow-env
  }
}

/** An environment variable (undefined in the browser or without permission). */
export function getEnv(name: string): string | undefined {
  return platformName() === 'browser' ? undefined : env(name);
}

/** The folder that holds webqat's cache files (null in the browser or when no home is known). */
export function cacheDir(): string | null {
  if (platformName() === 'browser') return null;
  const own = env('WEBQAT_CACHE_DIR');
  if (own) return own;
  const xdg = env('XDG_CACHE_HOME');
  if (xdg) return joinPath(xdg, 'webqat');
  const home = env('HOME') ?? env('USERPROFILE');
  return home ? joinPath(home, '.cache', 'webqat') : null;
}

async function ensureDir(dir: string): Promise<void> {
  const g = globalThis as unknown as { Deno?: { mkdir(p: string, o: { recursive: boolean }): Promise<void> } };
  if (g.Deno) {
    await g.Deno.mkdir(dir, { recursive: true });
    return;
  }
  const name = 'node:fs/promises';
  const fs = (await import(/* @vite-ignore */ name)) as typeof import('node:fs/promises');
  await fs.mkdir(dir, { recursive: true });
}

/** Where a store's file lives in Deno/Node (null in the browser). */
export function storePath(name: string): string | null {
  const dir = cacheDir();
  return dir ? joinPath(dir, `${name}.json`) : null;
}

function idb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('webqat', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('kv');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * The stored text of `name`, or null when there is none. Never throws for a missing store; an
 * unreadable one is reported through the returned error string.
 */
export async function loadStore(name: string): Promise<{ text: string | null; where: string; error?: string }> {
  if (platformName() === 'browser') {
    if (typeof indexedDB === 'undefined') return { text: null, where: 'memory (no IndexedDB)' };
    try {
      const db = await idb();
      const text = await new Promise<unknown>((resolve, reject) => {
        const req = db.transaction('kv', 'readonly').objectStore('kv').get(name);
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
      db.close();
      return { text: typeof text === 'string' ? text : null, where: `IndexedDB webqat/kv/${name}` };
    } catch (e) {
      return { text: null, where: `IndexedDB webqat/kv/${name}`, error: (e as Error).message };
    }
  }
  const path = storePath(name);
  if (!path) return { text: null, where: 'memory (no cache folder: set WEBQAT_CACHE_DIR or HOME)' };
  try {
    return { text: new TextDecoder().decode(await readFile(path)), where: path };
  } catch (e) {
    const msg = (e as Error).message;
    if (/not found/.test(msg)) return { text: null, where: path };
    return { text: null, where: path, error: msg };
  }
}

/** Replace the stored text of `name` (atomically on disk). Returns where it went. */
export async function saveStore(name: string, text: string): Promise<string> {
  if (platformName() === 'browser') {
    if (typeof indexedDB === 'undefined') return 'memory (no IndexedDB)';
    const db = await idb();
    await new Promise<void>((resolve, reject) => {
      const tx = db.transaction('kv', 'readwrite');
      tx.objectStore('kv').put(text, name);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    db.close();
    return `IndexedDB webqat/kv/${name}`;
  }
  const dir = cacheDir();
  const path = storePath(name);
  if (!dir || !path) return 'memory (no cache folder)';
  await ensureDir(dir);
  await writeFileAtomic(path, new TextEncoder().encode(text));
  return path;
}
