/** The last saved checkpoint, kept in IndexedDB (checkpoints outgrow localStorage's few MB). */

const DB = 'webqat';
const STORE = 'checkpoints';
const KEY = 'latest';

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

export function storeCheckpoint(c: StoredCheckpoint): Promise<void> {
  return tx<void>('readwrite', (s) => s.put(c, KEY));
}

export async function loadStoredCheckpoint(): Promise<StoredCheckpoint | null> {
  if (typeof indexedDB === 'undefined') return null;
  return (await tx<StoredCheckpoint | undefined>('readonly', (s) => s.get(KEY))) ?? null;
}
