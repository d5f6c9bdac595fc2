/**
 * The last saved checkpoint and the last autosave, kept in IndexedDB (checkpoints outgrow
 * localStorage's few MB). Each is one `put` in one transaction: the previous value stays readable
 * until the new one is completely stored.
 */

// a database of its own: the autotuner's cache (src/platform/store.ts) owns 'webqat' (version 1,
// store 'kv'), and two stores cannot share one database version opened from different places
const DB = 'webqat-checkpoints';
const STORE = 'checkpoints';
const KEY = 'latest';
/** the key the training loop autosaves to (each epoch and every few steps) */
export const AUTOSAVE_KEY = 'autosave';

export interface StoredCheckpoint {
  name: string;
  savedAt: string;
  bytes: Uint8Array;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`IndexedDB: ${req.error?.message ?? 'cannot open'}`));
  });
}

async function tx<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = f(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result as T);
      t.onerror = () => reject(new Error(`IndexedDB: ${t.error?.message ?? 'transaction failed'}`));
    });
  } finally {
    db.close();
  }
}

export function storeCheckpoint(c: StoredCheckpoint, key = KEY): Promise<void> {
  return tx<void>('readwrite', (s) => s.put(c, key));
}

/** The newest of the saved checkpoint and the autosave (null when neither exists). */
export async function loadStoredCheckpoint(): Promise<StoredCheckpoint | null> {
  if (typeof indexedDB === 'undefined') return null;
  const saved = (await tx<StoredCheckpoint | undefined>('readonly', (s) => s.get(KEY))) ?? null;
  const auto = (await tx<StoredCheckpoint | undefined>('readonly', (s) => s.get(AUTOSAVE_KEY))) ?? null;
  if (!saved || !auto) return saved ?? auto;
  return auto.savedAt > saved.savedAt ? auto : saved;
}

/** The training loop's last autosave (null when there is none or IndexedDB is unavailable). */
export async function loadAutosave(): Promise<StoredCheckpoint | null> {
  if (typeof indexedDB === 'undefined') return null;
  return (await tx<StoredCheckpoint | undefined>('readonly', (s) => s.get(AUTOSAVE_KEY))) ?? null;
}
