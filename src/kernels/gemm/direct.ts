/**
 * The one direct GEMM skeleton: no workgroup memory, no barriers. Each thread owns a TM x TN block
 * of the output in scalar registers (`a{r}_{t}`) and streams its operands straight from storage.
 *
 * CPU implementations (lavapipe, SwiftShader) run a workgroup on one core, lanes in SIMD, and every
 * storage or workgroup-memory access as a per-lane gather, while barriers split the shader into
 * pieces that switch between all invocations: there, staging tiles only adds work, and what pays is
 * a big register block per thread fed by as few loads as possible (docs/KERNELS.md).
 *
 * The skeleton owns what every direct kernel shares: the thread numbering (column block fastest,
 * then row block, group and split, so the lanes of a workgroup share rows), the register block, the
 * rows clamped for loading (`m{r}`, reads stay in bounds without branches) and the stores masked
 * per row. An op supplies its loaders and reduction loops (`body`, with `fmaBlock` for the
 * multiply-adds) and the epilogue of each row: the implicit-GEMM gathers and sliding windows of the
 * convolutions (conv.ts 'direct' and 'row'), the shift-sampled taps of the fused shift·1x1 forward
 * (shift.ts).
 */

/** Threads per workgroup of the direct kernels. */
export const DWG = 64;

/** Entry point of a direct kernel: `t` is the flat thread index over a 2-D dispatch of `DWG`-thread groups. */
export const DIRECT_MAIN = `@compute @workgroup_size(${DWG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * ${DWG}u + lid;`;

export interface DirectGemm {
  /** rows (of M) and columns per thread */
  TM: number;
  TN: number;
  /** uniforms, bindings, helpers */
  decls: string;
  /**
   * WGSL expressions of the thread grid: column blocks, row blocks, groups (default 1) and splits
   * (default 1); `rows` = M, for clamping and masking.
   */
  grid: { tilesN: string; tilesM: string; groups?: string; splits?: string; rows: string };
  /** loaders and reduction loops; in scope: `cb` (column block), `mBase` (first row), `m{r}`, `g`, `split`, accumulators `a{r}_{t}` */
  body: string[];
  /** the stores of row r (runs only when mBase + r < rows) */
  store: (r: number) => string;
  /** no accumulators declared by the skeleton (the body declares its own block) */
  ownAccumulators?: boolean;
}

const range = (n: number) => [...Array(n).keys()];

/** The multiply-adds of one reduction step: a{r}_{t} += A(r) · B(t) over the block. */
export function fmaBlock(TM: number, TN: number, a: (r: number) => string, b: (t: number) => string, indent = ''): string[] {
  return range(TM).flatMap((r) => range(TN).map((t) => `${indent}a${r}_${t} = fma(${a(r)}, ${b(t)}, a${r}_${t});`));
}

/** WGSL of one direct kernel (dispatch `grid1d(threads / DWG)` threads = tilesN · tilesM · groups · splits). */
export function directGemmCode(d: DirectGemm): string {
  const R = range(d.TM);
  const g = d.grid;
  const accs = d.ownAccumulators ? [] : R.flatMap((r) => range(d.TN).map((t) => `var a${r}_${t} = 0.0;`));
  return /* wgsl */ `
${d.decls}
${DIRECT_MAIN}
  let cb = t % ${g.tilesN};
  let r1 = t / ${g.tilesN};
  let mb = r1 % ${g.tilesM};
  let r2 = r1 / ${g.tilesM};
  let g = r2 % ${g.groups ?? '1u'};
  let split = r2 / ${g.groups ?? '1u'};
  if (split >= ${g.splits ?? '1u'}) { return; }
  let mBase = mb * ${d.TM}u;
  ${R.map((r) => `let m${r} = min(mBase + ${r}u, ${g.rows} - 1u);`).join('\n  ')}
  ${accs.join('\n  ')}
  ${d.body.join('\n  ')}
  ${R.map((r) => `if (mBase + ${r}u < ${g.rows}) { ${d.store(r)} }`).join('\n  ')}
}`;
}
