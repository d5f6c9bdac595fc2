/**
 * `npm run export -- --checkpoint run.safetensors --out model.safetensors` (Deno).
 *
 * Turns a training checkpoint into a packed model file (src/infer/format.ts): binary, ternary,
 * fixed-point and log layers as u32 words plus a scale, everything else float32, and the metadata the inference runtime
 * needs (model and options, quantizer per layer, input shape, classes, normalisation). The
 * quantizer comes from the checkpoint's training setup (metadata 'setup') when it has one, else
 * from --quant / --quantize-first / --quantize-last, which must match the run that wrote it.
 * Prints the per-layer layout and the sizes; exit codes: 0 done, 1 failed, 2 usage error.
 */
import process from 'node:process';
import { Command, CommanderError } from 'commander';
import {
  CIFAR10_MEAN,
  CIFAR10_STD,
  CIFAR100_MEAN,
  CIFAR100_STD,
  createModel,
  exportPacked,
  FASHION_MEAN,
  FASHION_STD,
  init,
  listModels,
  MNIST_MEAN,
  MNIST_STD,
  parseQuantSpec,
  quantizeModel,
  quantLayers,
  readCheckpoint,
  restoreCheckpoint,
  shutdown,
  writeFileAtomic,
} from '../../src/index.ts';
import '../../src/models/sspq.ts'; // registers sspq20, sspq20-wide, sspq34, sspq50

const NORMALIZATION: Record<string, { mean: number[]; std: number[] }> = {
  mnist: { mean: [MNIST_MEAN], std: [MNIST_STD] },
  'fashion-mnist': { mean: [FASHION_MEAN], std: [FASHION_STD] },
  cifar10: { mean: CIFAR10_MEAN, std: CIFAR10_STD },
  cifar100: { mean: CIFAR100_MEAN, std: CIFAR100_STD },
};

interface Opts {
  checkpoint: string;
  out: string;
  quant?: string;
  quantizeFirst?: boolean;
  quantizeLast?: boolean;
  dataset?: string;
  f16?: boolean;
  json?: boolean;
}

class Usage extends Error {}

function command(): Command {
  return new Command('export')
    .description('write a packed model file (binary/ternary/fixed/log weights as u32 words) from a training checkpoint')
    .requiredOption('--checkpoint <file>', 'a checkpoint written by `npm run train -- --save FILE`')
    .requiredOption('--out <file>', 'the packed model file to write (safetensors)')
    .option('--quant <spec>', "the --quant the model was trained with (default: the checkpoint's setup; needed for checkpoints without one)")
    .option('--quantize-first', 'the first conv/linear layer was quantized too (default: the checkpoint setup, else float)')
    .option('--quantize-last', 'the last conv/linear layer was quantized too (default: the checkpoint setup, else float)')
    .option('--dataset <name>', `normalisation to record (${Object.keys(NORMALIZATION).join(', ')}; default: the checkpoint's dataset)`)
    .option('--f16', 'store the float tensors (first/last layers, biases, batch norms, shifts) as F16: smaller than the size report says')
    .option('--json', 'print the summary as JSON')
    .helpOption('-h, --help', 'show this help')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
}

async function main(argv: string[]): Promise<number> {
  let o: Opts;
  try {
    const cmd = command();
    cmd.parse(argv, { from: 'user' });
    o = cmd.opts<Opts>();
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  try {
    const ck = await readCheckpoint(o.checkpoint);
    const model = ck.meta.model;
    if (!model) throw new Usage(`export: ${o.checkpoint} does not say which model it holds (metadata 'model'); it was not written by \`npm run train -- --save\``);
    if (!listModels().includes(model)) throw new Usage(`export: ${o.checkpoint} holds model '${model}', which this webqat does not know; known models: ${listModels().join(', ')}`);
    let setup: { quant?: string; quantizeFirst?: boolean; quantizeLast?: boolean } = {};
    if (ck.metadata.setup) {
      try {
        setup = JSON.parse(ck.metadata.setup);
      } catch {
        throw new Error(`export: ${o.checkpoint}: metadata 'setup' is not valid JSON`);
      }
    }
    if (o.quant && setup.quant && parseQuantSpec(o.quant).name !== setup.quant) {
      throw new Usage(`export: ${o.checkpoint} was trained with --quant ${setup.quant}, not ${o.quant}`);
    }
    const quantText = o.quant ?? setup.quant;
    if (!quantText) {
      throw new Usage(`export: ${o.checkpoint} does not record its quantizer; give the --quant it was trained with (and --quantize-first/--quantize-last if used)`);
    }
    let spec;
    try {
      spec = parseQuantSpec(quantText);
    } catch (e) {
      throw new Usage((e as Error).message);
    }
    const config = (ck.meta.modelConfig ?? {}) as Record<string, unknown>;
    const dataset = o.dataset ?? ck.meta.dataset;
    const normalization = dataset ? NORMALIZATION[dataset] : undefined;
    if (o.dataset && !normalization) throw new Usage(`export: --dataset '${o.dataset}' is not one of ${Object.keys(NORMALIZATION).join(', ')}`);
    await init();
    const m = createModel(model, config);
    if (!model.startsWith('sspq')) {
      quantizeModel(m, spec, { quantizeFirst: o.quantizeFirst ?? setup.quantizeFirst ?? false, quantizeLast: o.quantizeLast ?? setup.quantizeLast ?? false });
    }
    try {
      restoreCheckpoint(ck, m, null);
    } catch (e) {
      throw new Error(`${(e as Error).message} (is --quant ${spec.name} with these --quantize-first/--quantize-last flags what it was trained with?)`);
    }
    m.eval();
    // fixed/log ranges are host state, not in the checkpoint: calibrate them from the trained weights (as a resumed run does)
    for (const [, l] of quantLayers(m)) await l.wq.calibrate();
    const c = Number(config.inChannels ?? 1);
    const size = Number(config.inputSize ?? 28);
    const classes = Number(config.numClasses ?? 10);
    const ex = await exportPacked(m, {
      model,
      modelConfig: config,
      quant: spec.name,
      inputShape: [c, size, size],
      numClasses: classes,
      normalization,
      float16: o.f16,
    });
    if (!o.f16 && ex.tensorBytes !== ex.report.packedBytes) {
      throw new Error(`export: internal error: the file holds ${ex.tensorBytes} bytes of tensors, the size report says ${ex.report.packedBytes}`);
    }
    await writeFileAtomic(o.out, ex.bytes);
    const summary = {
      out: o.out,
      model,
      quant: spec.name,
      fileBytes: ex.bytes.length,
      tensorBytes: ex.tensorBytes,
      reportPackedBytes: ex.report.packedBytes,
      float32Bytes: ex.report.floatBytes,
      checkpointBytes: ck.tensors.size ? [...ck.tensors.entries()].filter(([k]) => !k.startsWith('optimizer.')).reduce((s, [, t]) => s + t.data.length, 0) : 0,
      layers: ex.layers,
    };
    if (o.json) {
      process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    } else {
      for (const l of ex.layers) process.stdout.write(`  ${l.name.padEnd(16)} ${l.kind.padEnd(8)} ${l.quantizer.padEnd(10)} ${String(l.bytes).padStart(8)} bytes\n`);
      process.stdout.write(
        `wrote ${o.out}: ${ex.bytes.length} bytes (${ex.tensorBytes} bytes of tensors${o.f16 ? `, float tensors as F16; the size report says ${ex.report.packedBytes} with F32` : ` = the size report's packed size`}; ` +
          `${ex.report.floatBytes} bytes as float32, ${(ex.report.floatBytes / ex.tensorBytes).toFixed(2)}x smaller)\n`,
      );
    }
    return 0;
  } catch (e) {
    const msg = (e as Error).message ?? String(e);
    process.stderr.write((msg.startsWith('webqat') || msg.startsWith('export') ? msg : `export: ${msg}`) + '\n');
    return e instanceof Usage ? 2 : 1;
  } finally {
    await shutdown();
  }
}

process.exit(await main(process.argv.slice(2)));
