/**
 * The one tiled GEMM skeleton: C[M x N] = Σ_k A(m, k) · B(k, n) over this workgroup's K range.
 *
 * A workgroup computes a BM x BN block of C. Each K step stages a BK-deep slice of both operands in
 * workgroup memory as vec4 rows (As[k][m/4], Bs[k][n/4]), so the inner loop reads contiguous vec4s
 * whatever the operands' layouts are; each thread owns a TM x TN register block held in TM·TN/4
 * vec4 accumulators (straight-line code, no arrays: every accumulator stays in a register).
 *
 * What differs between the GEMMs of webqat is only how an operand slice gets into workgroup memory
 * and where a result goes. The callers supply:
 *  - `decls`: uniforms, bindings and helper functions,
 *  - `prologue`: statements that define the tile origin `m0`, `n0` and the K range `kBegin`, `kEnd`
 *    (split-K: a workgroup owns `[kBegin, kEnd)`; the output of a split goes to its partial buffer),
 *  - a loader per operand (`TileLoader`): matmul's strided vec4 loads with transposes, the
 *    implicit-GEMM im2col / col2im gathers of the convolutions, the shift-sampled bilinear or rounded
 *    taps of the fused shift·1x1 products. `scalarLoader` builds the common one-value-per-load kind;
 *  - an epilogue (`GemmStore`): one value or one vec4 of C at (m, n), with bias, layout and split
 *    partials written there.
 *
 * Conv forward / data gradient / weight gradient, matmul and the three shift·1x1 GEMMs all run
 * through `tiledGemmCode`; each is one loader pair and one epilogue (conv.ts, matmul.ts, shift.ts).
 */

/** Workgroup block BM x BN, slice depth BK, per-thread block TM x TN (TM, TN multiples of 4). */
export interface GemmTile {
  BM: number;
  BN: number;
  BK: number;
  TM: number;
  TN: number;
}

/** Threads of a tile: (BN / TN) along n times (BM / TM) along m. */
export const tileThreads = (t: GemmTile): number => (t.BN / t.TN) * (t.BM / t.TM);

/** Workgroup memory a tile stages per K step, in bytes. */
export const tileBytes = (t: GemmTile): number => (t.BM + t.BN) * t.BK * 4;

/**
 * How one operand's BK-deep slice reaches workgroup memory. In scope: `lid` (local invocation
 * index), `m0`, `n0`, `kBegin`, `kEnd` and, in `step` and `fill`, `k0` (the slice's first k).
 * `fill` writes As[k * BM/4 + m/4] (operand A) or Bs[k * BN/4 + n/4] (operand B) for the whole slice,
 * zeros outside the operand.
 */
export interface TileLoader {
  /** once per thread, before the K loop (hoisted index decoding) */
  setup?: string;
  /** once per K step, before both fills */
  step?: string;
  fill: string;
}

/** The epilogue: a scalar body over `m`, `n`, `v` (bounds to be checked there), or a vec4 call. */
export type GemmStore = { scalar: string } | { quad: (m: string, n: string, acc: string) => string };

export interface TiledGemm {
  tile: GemmTile;
  decls: string;
  prologue: string;
  a: TileLoader;
  b: TileLoader;
  store: GemmStore;
}

const COMP = ['x', 'y', 'z', 'w'];

/**
 * A loader that reads one value per load. `order` 'k': consecutive threads take consecutive k (the
 * thread's local k, `${s}Kl`, is fixed; its m or n varies per round); 'x': consecutive threads take
 * consecutive m / n (fixed per thread as `${s}Xl`; with operand B that is the thread's column `n`,
 * so its decoding can be hoisted into `setup`). `load` is WGSL that assigns `v` (declared 0) from
 * the absolute indices `m` (operand A) or `n` (operand B) and `k`; it checks its own bounds.
 */
export function scalarLoader(side: 'A' | 'B', t: GemmTile, order: 'k' | 'x', load: string, extra: { setup?: string; step?: string } = {}): TileLoader {
  const s = side === 'A' ? 'a' : 'b';
  const X = side === 'A' ? t.BM : t.BN;
  const x = side === 'A' ? 'm' : 'n';
  const x0 = side === 'A' ? 'm0' : 'n0';
  const T = tileThreads(t);
  const rounds = (X * t.BK) / T;
  if (!Number.isInteger(rounds) || rounds < 1 || T % (order === 'k' ? t.BK : X)) {
    throw new Error(`webqat: internal: a ${t.BM}x${t.BN}x${t.BK} tile cannot load operand ${side} ${order}-fast with ${T} threads`);
  }
  const arr = side === 'A' ? 'As' : 'Bs';
  const put = (xl: string, kl: string) => `${arr}[${kl} * ${X / 4}u + ${xl} / 4u][${xl} % 4u] = v;`;
  if (order === 'k') {
    return {
      setup: `let ${s}Kl = lid % ${t.BK}u; let ${s}X0 = lid / ${t.BK}u;\n  ${extra.setup ?? ''}`,
      step: extra.step,
      fill: `for (var r = 0u; r < ${rounds}u; r++) {
      let ${s}Xl = ${s}X0 + r * ${T / t.BK}u;
      let ${x} = ${x0} + ${s}Xl; let k = k0 + ${s}Kl;
      var v = 0.0;
      ${load}
      ${put(`${s}Xl`, `${s}Kl`)}
    }`,
    };
  }
  return {
    setup: `let ${s}Xl = lid % ${X}u; let ${s}K0 = lid / ${X}u; let ${x} = ${x0} + ${s}Xl;\n  ${extra.setup ?? ''}`,
    step: extra.step,
    fill: `for (var r = 0u; r < ${rounds}u; r++) {
      let ${s}Kl = ${s}K0 + r * ${T / X}u;
      let k = k0 + ${s}Kl;
      var v = 0.0;
      ${load}
      ${put(`${s}Xl`, `${s}Kl`)}
    }`,
  };
}

/** WGSL of one tiled GEMM (entry point `main`, workgroup size = `tileThreads(tile)`). */
export function tiledGemmCode(g: TiledGemm): string {
  const { BM, BN, BK, TM, TN } = g.tile;
  const wx = BN / TN; // threads along n
  const wy = BM / TM; // threads along m
  const bm4 = BM / 4;
  const bn4 = BN / 4;
  const tm4 = TM / 4;
  const tn4 = TN / 4;
  const decl: string[] = [];
  const inner: string[] = [];
  const stores: string[] = [];
  for (let i = 0; i < TM; i++) for (let j = 0; j < tn4; j++) decl.push(`var acc_${i}_${j} = vec4f(0.0);`);
  // a thread's row quad q sits at m-quad q·wy + ty, its column quad j at j·wx + tx
  for (let q = 0; q < tm4; q++) inner.push(`let a${q} = As[k * ${bm4}u + ${q * wy}u + ty];`);
  for (let j = 0; j < tn4; j++) inner.push(`let b${j} = Bs[k * ${bn4}u + ${j * wx}u + tx];`);
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < tn4; j++) inner.push(`acc_${i}_${j} = fma(vec4f(a${i >> 2}.${COMP[i & 3]}), b${j}, acc_${i}_${j});`);
  }
  for (let i = 0; i < TM; i++) {
    for (let j = 0; j < tn4; j++) {
      const m = `m0 + (${(i >> 2) * wy}u + ty) * 4u + ${i & 3}u`;
      const n = `n0 + (${j * wx}u + tx) * 4u`;
      if ('quad' in g.store) stores.push(g.store.quad(m, n, `acc_${i}_${j}`));
      else {
        for (let c = 0; c < 4; c++) {
          stores.push(`{ let m = ${m}; let n = ${n} + ${c}u; let v = acc_${i}_${j}.${COMP[c]};\n    ${g.store.scalar}\n  }`);
        }
      }
    }
  }
  return /* wgsl */ `
${g.decls}
var<workgroup> As: array<vec4f, ${BK * bm4}>;
var<workgroup> Bs: array<vec4f, ${BK * bn4}>;
@compute @workgroup_size(${wx * wy})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  ${g.prologue}
  let tx = lid % ${wx}u;
  let ty = lid / ${wx}u;
  ${g.a.setup ?? ''}
  ${g.b.setup ?? ''}
  ${decl.join('\n  ')}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {
    ${g.a.step ?? ''}
    ${g.b.step ?? ''}
    ${g.a.fill}
    ${g.b.fill}
    workgroupBarrier();
    for (var k = 0u; k < ${BK}u; k++) {
      ${inner.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${stores.join('\n  ')}
}`;
}

/**
 * Tile origin from a linear tile index over a 2-D dispatch (wid.x + wid.y · nwg.x, so more tiles
 * than one grid dimension holds still fit); `tilesN`, `tilesM` are uniform expressions. Returns
 * early from workgroups past the last tile.
 */
export const linearTiles = (t: GemmTile, tilesN: string, tilesM: string): string => `
  let tile = wid.x + wid.y * nwg.x;
  if (tile >= ${tilesN} * ${tilesM}) { return; }
  let n0 = (tile % ${tilesN}) * ${t.BN}u;
  let m0 = (tile / ${tilesN}) * ${t.BM}u;`;

/**
 * The tile menu of the convolution-shaped GEMMs (conv, fused shift·1x1): BN = 64 columns, BM the
 * smallest of 16 / 32 / 64 that covers M (narrow layers such as 16-channel ResNet stages do not
 * idle 3/4 of a tile), 4 x 4 per thread, BK = 16. Three pipelines at most per GEMM.
 */
export const CONV_TILES: readonly GemmTile[] = [16, 32, 64].map((BM) => ({ BM, BN: 64, BK: 16, TM: 4, TN: 4 }));

export function convTile(M: number): GemmTile {
  return CONV_TILES.find((t) => M <= t.BM) ?? CONV_TILES[CONV_TILES.length - 1];
}
