/**
 * A drawing pad for digits and the MNIST-style preprocessing of what was drawn: crop to the ink,
 * scale the longer side to 20 px (aspect kept), place it in a 28x28 frame with its centre of mass at
 * the centre, as the MNIST images were made.
 */

export class DrawPad {
  private readonly ctx: CanvasRenderingContext2D;
  private drawing = false;
  private last: { x: number; y: number } | null = null;
  /** called after each finished stroke */
  onStroke: () => void = () => {};
  private inkCount = 0;

  constructor(readonly canvas: HTMLCanvasElement) {
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new Error('no 2D canvas context');
    this.ctx = ctx;
    this.clear();
    canvas.addEventListener('pointerdown', (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.drawing = true;
      this.last = this.pos(e);
      this.dot(this.last);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drawing) return;
      const p = this.pos(e);
      this.line(this.last ?? p, p);
      this.last = p;
    });
    const end = () => {
      if (!this.drawing) return;
      this.drawing = false;
      this.last = null;
      this.onStroke();
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  get isEmpty(): boolean {
    return this.inkCount === 0;
  }

  private get penWidth(): number {
    return this.canvas.width / 14;
  }

  private pos(e: PointerEvent): { x: number; y: number } {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * this.canvas.width) / r.width, y: ((e.clientY - r.top) * this.canvas.height) / r.height };
  }

  private dot(p: { x: number; y: number }): void {
    this.ctx.fillStyle = '#fff';
    this.ctx.beginPath();
    this.ctx.arc(p.x, p.y, this.penWidth / 2, 0, 2 * Math.PI);
    this.ctx.fill();
    this.inkCount++;
  }

  /** Draw a stroke segment (also used by tests through `strokes`). */
  line(a: { x: number; y: number }, b: { x: number; y: number }): void {
    const c = this.ctx;
    c.strokeStyle = '#fff';
    c.lineWidth = this.penWidth;
    c.lineCap = 'round';
    c.lineJoin = 'round';
    c.beginPath();
    c.moveTo(a.x, a.y);
    c.lineTo(b.x, b.y);
    c.stroke();
    this.inkCount++;
  }

  /** Draw polylines given in 0..1 coordinates. */
  strokes(lines: [number, number][][]): void {
    const w = this.canvas.width;
    const h = this.canvas.height;
    for (const l of lines) {
      for (let i = 1; i < l.length; i++) this.line({ x: l[i - 1][0] * w, y: l[i - 1][1] * h }, { x: l[i][0] * w, y: l[i][1] * h });
    }
    this.onStroke();
  }

  clear(): void {
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.inkCount = 0;
  }

  /** The drawing as MNIST-like 0..255 pixels [size*size] (null when nothing is drawn). */
  toMnist(size = 28, box = 20): Uint8Array | null {
    const { width: w, height: h } = this.canvas;
    const src = this.ctx.getImageData(0, 0, w, h).data;
    let x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (src[(y * w + x) * 4] > 20) {
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
    }
    if (x1 < 0) return null;
    const bw = x1 - x0 + 1;
    const bh = y1 - y0 + 1;
    const scale = box / Math.max(bw, bh);
    const tw = Math.max(1, Math.round(bw * scale));
    const th = Math.max(1, Math.round(bh * scale));
    // downscale the ink's bounding box with the browser's smoothing
    const small = document.createElement('canvas');
    small.width = tw;
    small.height = th;
    const sc = small.getContext('2d', { willReadFrequently: true })!;
    sc.imageSmoothingEnabled = true;
    sc.imageSmoothingQuality = 'high';
    sc.drawImage(this.canvas, x0, y0, bw, bh, 0, 0, tw, th);
    const px = sc.getImageData(0, 0, tw, th).data;
    // centre of mass of the scaled ink
    let m = 0, cx = 0, cy = 0;
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const v = px[(y * tw + x) * 4];
        m += v;
        cx += v * x;
        cy += v * y;
      }
    }
    cx = m > 0 ? cx / m : tw / 2;
    cy = m > 0 ? cy / m : th / 2;
    const ox = Math.round(size / 2 - cx);
    const oy = Math.round(size / 2 - cy);
    const out = new Uint8Array(size * size);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const tx = x + ox;
        const ty = y + oy;
        if (tx < 0 || ty < 0 || tx >= size || ty >= size) continue;
        out[ty * size + tx] = px[(y * tw + x) * 4];
      }
    }
    return out;
  }
}

/** Paint 0..255 grayscale pixels [size*size] into a canvas (a preview of what the model sees). */
export function paintGray(canvas: HTMLCanvasElement, pixels: Uint8Array, size = 28): void {
  canvas.width = size;
  canvas.height = size;
  const c = canvas.getContext('2d')!;
  const img = c.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = pixels[i];
    img.data[4 * i + 3] = 255;
  }
  c.putImageData(img, 0, 0);
}
