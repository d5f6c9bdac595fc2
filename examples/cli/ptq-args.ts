/**
 * Command-line parsing for `ptq` (commander). Pure: takes argv and returns the options, or throws a
 * UsageError (exit code 2; --help: exit code 0) naming what is wrong and what is accepted.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ptqLogMs } from '../../src/quant/ptq/quantizers/index.ts';
import { type LogM, parseBits, PTQ_METHODS, type PtqMethod } from '../../src/quant/ptq/sqnr.ts';
import { DATASETS, type DatasetArg, UsageError } from './args.ts';

export interface PtqArgs {
  checkpoint: string;
  model?: string;
  dataset?: DatasetArg;
  dataDir?: string;
  method: PtqMethod;
  weightBits: number;
  actBits: number;
  bitsText: string;
  calibBatches: number;
  calibBatchSize: number;
  evalBatchSize: number;
  logM: LogM[];
  preferFixedDb: number;
  targetSqnr?: number;
  maxBits: number;
  floatFirst: boolean;
  floatLast: boolean;
  testLimit?: number;
  seed: number;
  json?: string;
  save?: string;
}

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[+]?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'.`);
    }
    return n;
  };
}

function numArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got '${v}'.`);
    return n;
  };
}

export function buildPtqCommand(): Command {
  return new Command('ptq')
    .description('Post-training quantization (MXQN): fixed-point weights, fixed-point or log activations chosen per layer by SQNR; float vs quantized test accuracy.')
    .requiredOption('--checkpoint <file>', 'a checkpoint written by `npm run train -- --save F.safetensors`')
    .option('--model <name>', 'registry model the checkpoint holds (default: the one recorded in the checkpoint)')
    .addOption(new Option('--dataset <name>', 'dataset for calibration (train split) and accuracy (test split) (default: the checkpoint\'s)').choices(DATASETS))
    .option('--data-dir <dir>', 'folder with the dataset files (as for train)')
    .addOption(
      new Option('--method <name>', `mxqn: per-layer SQNR choice among the quantizer families (${PTQ_METHODS.slice(1).join(', ')}); ${PTQ_METHODS.slice(1).join(' / ')}: one family only`)
        .choices(PTQ_METHODS).default('mxqn'),
    )
    .option('--bits <wXaY>', 'weight and activation bits, each 2..16', 'w8a8')
    .option('--calib-batches <n>', 'calibration batches from the training set', intArg('--calib-batches', 1), 10)
    .option('--calib-batch-size <n>', 'calibration batch size', intArg('--calib-batch-size', 1), 100)
    .option('--eval-batch-size <n>', 'evaluation batch size', intArg('--eval-batch-size', 1), 500)
    .option('--log-m <list>', `log bases 2^(1/m) to consider, from ${ptqLogMs().join(', ')}`, ptqLogMs('default').join(','))
    .option('--prefer-fixed-db <x>', 'mxqn: keep fixed point unless log wins by more than this many dB', numArg('--prefer-fixed-db'), 0.5)
    .option('--target-sqnr <dB>', 'bit allocation: raise the weakest layer one bit at a time until the network SQNR estimate reaches this', numArg('--target-sqnr'))
    .option('--max-bits <n>', 'bit allocation: at most this many bits per tensor (2..16)', intArg('--max-bits', 2), 16)
    .option('--float-first', 'keep the first conv/linear layer float (default: every layer is quantized)', false)
    .option('--float-last', 'keep the last conv/linear layer float', false)
    .option('--test-limit <n>', 'use only the first N test samples', intArg('--test-limit', 1))
    .option('--seed <n>', 'seed of the calibration sample order', intArg('--seed', 0), 1)
    .option('--json <file>', 'write the per-layer plan, SQNRs and accuracies here')
    .option('--save <file>', 'write the quantized model (folded, fake-quantized weights + plan) as safetensors')
    .helpOption('-h, --help', 'show this help')
    .allowExcessArguments(false)
    .showSuggestionAfterError(true);
}

export function parsePtqArgs(argv: string[], models: readonly string[]): PtqArgs {
  const cmd = buildPtqCommand();
  let captured = '';
  cmd.exitOverride();
  cmd.configureOutput({ writeOut: (s) => (captured += s), writeErr: (s) => (captured += s) });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help') throw new UsageError(captured || cmd.helpInformation(), 0);
      let msg = e.message.replace(/^error: /, '');
      if (e.code === 'commander.unknownOption' || e.code === 'commander.excessArguments') {
        msg += `\naccepted options: ${cmd.options.map((o) => o.long).filter(Boolean).join(', ')}\n(see --help)`;
      }
      throw new UsageError(`ptq: ${msg}`);
    }
    throw e;
  }
  const o = cmd.opts();
  if (o.model !== undefined && !models.includes(o.model)) {
    throw new UsageError(`ptq: unknown model '${o.model}'; accepted models: ${models.join(', ')}`);
  }
  let bits: { weightBits: number; actBits: number };
  try {
    bits = parseBits(o.bits);
  } catch (e) {
    throw new UsageError(`ptq: --bits: ${(e as Error).message.replace(/^webqat: ptq: /, '')}`);
  }
  const logM = String(o.logM).split(',').map((s) => s.trim());
  const ms = ptqLogMs().map(String);
  if (!logM.length || logM.some((m) => !ms.includes(m))) {
    throw new UsageError(`ptq: --log-m must be a comma-separated list of ${ms.join(', ')} (log base 2^(1/m)), got '${o.logM}'`);
  }
  if (o.maxBits > 16) throw new UsageError(`ptq: --max-bits must be an integer in 2..16, got ${o.maxBits}`);
  return {
    checkpoint: o.checkpoint,
    model: o.model,
    dataset: o.dataset,
    dataDir: o.dataDir,
    method: o.method,
    ...bits,
    bitsText: String(o.bits).toLowerCase(),
    calibBatches: o.calibBatches,
    calibBatchSize: o.calibBatchSize,
    evalBatchSize: o.evalBatchSize,
    logM: [...new Set(logM.map(Number))] as LogM[],
    preferFixedDb: o.preferFixedDb,
    targetSqnr: o.targetSqnr,
    maxBits: o.maxBits,
    floatFirst: o.floatFirst,
    floatLast: o.floatLast,
    testLimit: o.testLimit,
    seed: o.seed,
    json: o.json,
    save: o.save,
  };
}

/** Input shape and classes of each dataset (known before loading it). */
export const DATASET_INPUT: Record<DatasetArg, { c: number; size: number; classes: number }> = {
  mnist: { c: 1, size: 28, classes: 10 },
  'fashion-mnist': { c: 1, size: 28, classes: 10 },
  cifar10: { c: 3, size: 32, classes: 10 },
  cifar100: { c: 3, size: 32, classes: 100 },
};
