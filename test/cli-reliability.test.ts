/**
 * Issue 13, the `train` command as a user runs it (Deno subprocesses): a diverging run exits 1 and
 * saves nothing broken, checkpoints carry the training setup (a conflicting flag is refused with
 * exit 2 or applied and said; the quantizer comes from the checkpoint), every path is checked
 * before training, a batch larger than the GPU's buffers gets batch-size advice, and a good
 * `npm run train` prints nothing that says "error". The runs that train are the same Deno
 * subprocesses whichever runtime hosts this file, so they run in the Node stage only.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const inDeno = typeof (globalThis as { Deno?: unknown }).Deno !== 'undefined';
const nodeOnly = inDeno ? 'trains in a Deno subprocess: run once, in the Node stage' : false;

function cli(args: string[], opts: { timeout?: number; npm?: boolean; env?: Record<string, string | undefined> } = {}) {
  const env = { ...process.env, ...opts.env } as Record<string, string>;
  env.VK_ICD_FILENAMES ??= '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json';
  if (!opts.npm) env.XDG_RUNTIME_DIR ??= '/tmp';
  for (const [k, v] of Object.entries(opts.env ?? {})) if (v === undefined) delete env[k];
  env.NO_COLOR = '1';
  const cmd = opts.npm ? ['npm', ['run', '--silent', 'train', '--', ...args]] as const : ['npx', ['deno', 'run', '-A', 'examples/cli/train.ts', ...args]] as const;
  const r = spawnSync(cmd[0], [...cmd[1]], { encoding: 'utf8', env, timeout: opts.timeout ?? 180_000 });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webqat-cli-rel-'));
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('train: pre-flight and messages', () => {
  it('checks --save, --json and --data-dir before any training (exit 1, no banner)', async () => {
    const a = cli(['--save', join(dir, 'missing', 'm.safetensors'), '--quiet']);
    assert.equal(a.code, 1, a.err);
    assert.match(a.err, /train: --save: cannot write .*missing\/m\.safetensors: its directory .*missing\/ does not exist/);
    assert.doesNotMatch(a.out, /webqat train:/, 'training started before the check');
    const b = cli(['--json', '/proc/x.json', '--quiet']);
    assert.equal(b.code, 1, b.err);
    assert.match(b.err, /train: --json: cannot write \/proc\/x\.json: files cannot be created in \/proc\//);
    const file = join(dir, 'a-file');
    await writeFile(file, 'not a folder');
    const c = cli(['--dataset', 'fashion-mnist', '--data-dir', file, '--quiet']);
    assert.equal(c.code, 1, c.err);
    assert.match(c.err, /train: --data-dir .*a-file is a file, not a directory/);
    const d = cli(['--data-dir', join(dir, 'nowhere'), '--quiet']);
    assert.equal(d.code, 1, d.err);
    assert.match(d.err, /train: --data-dir .*nowhere does not exist/);
  });

  it('a batch too large for the GPU gets --batch-size advice, not "split it into smaller tensors"', () => {
    const r = cli(['--batch-size', '100000000', '--epochs', '1', '--quiet']);
    assert.equal(r.code, 1, r.err);
    assert.match(r.out, /batch 60000 \(--batch-size 100000000 exceeds the 60000 training samples: one batch of 60000 per epoch\)/);
    assert.match(r.err, /a batch of 60000 samples does not fit this GPU's buffers: use a smaller --batch-size \(the default for lenet5 is 32\)/);
    assert.doesNotMatch(r.err, /split it into smaller tensors/);
  });

  it('npm run train prints nothing that says "error" on a good run (no XDG_RUNTIME_DIR set); the banner shows the batch used', { skip: nodeOnly }, () => {
    const r = cli(['--model', 'mlp', '--limit', '100', '--batch-size', '256', '--test-limit', '64', '--epochs', '1', '--quiet'], { npm: true, env: { XDG_RUNTIME_DIR: undefined } });
    assert.equal(r.code, 0, r.err + r.out);
    assert.doesNotMatch(r.out + r.err, /error/i);
    assert.match(r.out, /batch 100 \(--batch-size 256 exceeds the 100 training samples: one batch of 100 per epoch\)/);
  });
});

describe('train: --json write errors', () => {
  it('a --json write that fails during the run (its directory removed after the pre-flight check) is reported once, exit 1', { skip: nodeOnly }, async () => {
    const sub = join(dir, 'vanishing');
    await mkdir(sub);
    const env = { ...process.env, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', XDG_RUNTIME_DIR: '/tmp', NO_COLOR: '1' } as Record<string, string>;
    const args = ['deno', 'run', '-A', 'examples/cli/train.ts', '--model', 'mlp', '--limit', '256', '--test-limit', '64', '--batch-size', '32', '--epochs', '2', '--json', join(sub, 'r.json'), '--quiet'];
    const p = spawn('npx', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let removed = false;
    p.stdout.on('data', (d) => {
      out += d;
      if (!removed && out.includes('webqat train:')) {
        removed = true;
        void rm(sub, { recursive: true, force: true }); // after the pre-flight check, before the first epoch's report
      }
    });
    p.stderr.on('data', (d) => (err += d));
    const code = await new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
    assert.ok(removed, out + err);
    assert.equal(code, 1, out + err);
    const lines = err.split('\n').filter((l) => /cannot write/.test(l));
    assert.equal(lines.length, 1, `the --json error was printed ${lines.length} times:\n${err}`);
    assert.match(lines[0], /train: cannot write --json: webqat: cannot write .*vanishing\/r\.json: its directory .*vanishing\/ does not exist/);
  });
});

describe('train: never save a broken model', () => {
  it('--lr 1e4: the loss explosion stops the run with exit 1 and nothing is saved', { skip: nodeOnly }, async () => {
    const save = join(dir, 'F.safetensors');
    const json = join(dir, 'F.json');
    const r = cli(['--lr', '1e4', '--epochs', '2', '--save', save, '--limit', '256', '--test-limit', '256', '--json', json, '--quiet']);
    assert.equal(r.code, 1, r.err + r.out);
    assert.match(r.err, /training diverged: the loss exploded to [\d.e+]+ \(more than 100x its running value [\d.]+\) in epoch 1/);
    assert.match(r.err, /Nothing was saved/);
    assert.equal(await stat(save).catch(() => null), null, 'a diverged checkpoint was written');
    const rep = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(rep.status, 'diverged');
  });
});

describe('train: checkpoints carry the training setup', () => {
  it('resume takes --quant from the checkpoint (and says so), refuses a conflicting --optimizer (exit 2), applies and reports a new --lr; the good checkpoint survives the divergence it causes', { skip: nodeOnly }, async () => {
    const save = join(dir, 'G.safetensors');
    const base = ['--model', 'mlp', '--limit', '128', '--test-limit', '64', '--batch-size', '32', '--quiet'];
    const a = cli([...base, '--quant', 'twn', '--epochs', '1', '--save', save]);
    assert.equal(a.code, 0, a.err + a.out);
    const good = await readFile(save);
    const b = cli([...base, '--resume', save, '--optimizer', 'sgd']);
    assert.equal(b.code, 2, b.err);
    assert.match(b.err, /--resume .*G\.safetensors was trained with --optimizer adam, not sgd/);
    const c2 = cli([...base, '--resume', save, '--quant', 'bwn']);
    assert.equal(c2.code, 2, c2.err);
    assert.match(c2.err, /was trained with --quant twn, not bwn/);
    const json = join(dir, 'G.json');
    const c = cli([...base, '--resume', save, '--epochs', '2', '--lr', '1e6', '--json', json]);
    assert.equal(c.code, 1, c.err + c.out);
    assert.match(c.out, /adam lr 1000000 cosine/);
    assert.match(c.out, /resume: --quant twn from the checkpoint/);
    assert.match(c.out, /resume: --lr 1000000 applied \(the checkpoint was trained with lr 0\.001\)/);
    assert.match(c.out, /resume: --epochs 2 applied \(the checkpoint was set up for 1/);
    assert.match(c.out, /quantization: --quant twn; 1 quantized layer\(s\)/);
    assert.match(c.err, /training diverged: .*lr [\d.e+]+\).*The last good checkpoint .*G\.safetensors was kept/);
    assert.deepEqual(await readFile(save), good, 'the good checkpoint was overwritten');
    const rep = JSON.parse(await readFile(json, 'utf8'));
    assert.equal(rep.config.lr, 1e6);
    assert.equal(rep.config.quant, 'twn');
    assert.equal(rep.status, 'diverged');
  });
});

/** Rewrite a safetensors file without metadata key `drop` (a checkpoint as an older webqat wrote it). */
async function dropMetadata(path: string, drop: string): Promise<void> {
  const bytes = await readFile(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
  assert.ok(drop in header.__metadata__, `no metadata '${drop}' in ${path}`);
  delete header.__metadata__[drop];
  let text = JSON.stringify(header);
  while ((8 + Buffer.byteLength(text)) % 8) text += ' ';
  const head = Buffer.alloc(8);
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  await writeFile(path, Buffer.concat([head, Buffer.from(text), bytes.subarray(8 + n)]));
}

describe('train: checkpoints from before the training setup was stored', () => {
  it('--momentum on resume is applied and said (was: silently replaced by the saved optimizer state); not given, the saved value is reported; a --weight-decay that changes the parameter groups is refused (exit 2)', { skip: nodeOnly }, async () => {
    const save = join(dir, 'old.safetensors');
    const base = ['--model', 'mlp', '--limit', '128', '--test-limit', '64', '--batch-size', '32', '--optimizer', 'sgd', '--lr', '0.01', '--quiet'];
    const a = cli([...base, '--momentum', '0.8', '--epochs', '1', '--save', save]);
    assert.equal(a.code, 0, a.err + a.out);
    await dropMetadata(save, 'setup');
    const groupsOf = async (p: string) => {
      const b = await readFile(p);
      const h = JSON.parse(b.subarray(8, 8 + Number(b.readBigUInt64LE(0))).toString('utf8'));
      return { groups: JSON.parse(h.__metadata__.optimizer_groups) as { momentum: number }[], setup: h.__metadata__.setup as string | undefined };
    };
    assert.equal((await groupsOf(save)).groups[0].momentum, 0.8);
    // --momentum 0.5: applied to the restored optimizer, said, reported and stored in the next checkpoint
    const next = join(dir, 'old-next.safetensors');
    await writeFile(next, await readFile(save));
    const json = join(dir, 'old.json');
    const b = cli([...base, '--resume', next, '--momentum', '0.5', '--epochs', '2', '--save', next, '--json', json]);
    assert.equal(b.code, 0, b.err + b.out);
    assert.match(b.out, /resume: --momentum 0\.5 applied \(.*old-next\.safetensors predates stored training setups; its optimizer state had --momentum 0\.8\)/);
    assert.equal(JSON.parse(await readFile(json, 'utf8')).config.momentum, 0.5);
    const after = await groupsOf(next);
    assert.ok(after.groups.every((g) => g.momentum === 0.5), JSON.stringify(after.groups));
    assert.equal(JSON.parse(after.setup!).momentum, 0.5);
    // no flag: the run continues with the saved momentum (not the default 0.9), and it says so
    const c = cli([...base, '--resume', save, '--epochs', '2', '--json', json]);
    assert.equal(c.code, 0, c.err + c.out);
    assert.match(c.out, /resume: --momentum 0\.8 from the checkpoint's optimizer state \(it predates stored training setups; --momentum was not given\)/);
    assert.equal(JSON.parse(await readFile(json, 'utf8')).config.momentum, 0.8);
    // --weight-decay on a checkpoint trained without it: its optimizer state has one group, not two
    const d = cli([...base, '--resume', save, '--weight-decay', '1e-4', '--epochs', '2']);
    assert.equal(d.code, 2, d.err + d.out);
    assert.match(d.err, /predates stored training setups and its optimizer state has 1 parameter group\(s\), not the 2 that --weight-decay 0\.0001 makes: it was trained with no weight decay/);
  });
});
