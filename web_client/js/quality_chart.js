// A small SVG chart of one point's loss (%) and bitrate (kbit/s) over its recent samples: no
// library, drawn from GET /quality/points/{id}/history (oldest first).

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 180;
const PAD = { left: 40, right: 52, top: 12, bottom: 22 };

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** A round upper bound for an axis (at least `floor`). */
function axisTop(values, floor) {
  const top = Math.max(floor, ...values);
  const step = 10 ** Math.floor(Math.log10(top));
  return Math.ceil(top / step) * step;
}

/** The path of `values` (nulls break it) scaled into the plot. */
function line(values, top) {
  const w = WIDTH - PAD.left - PAD.right;
  const h = HEIGHT - PAD.top - PAD.bottom;
  const n = Math.max(1, values.length - 1);
  let d = "";
  let pen = false;
  values.forEach((v, i) => {
    if (v === null || v === undefined) { pen = false; return; }
    const x = PAD.left + (w * i) / n;
    const y = PAD.top + h - (h * Math.min(v, top)) / top;
    d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
    pen = true;
  });
  return d.trim();
}

/** Draw `samples` into `container` (replacing what was there); returns the <svg>. */
export function drawQualityChart(container, samples) {
  const loss = samples.map((s) => s.loss_percent);
  const bitrate = samples.map((s) => s.bitrate_kbps);
  const lossTop = axisTop(loss.filter((v) => v !== null), 10);
  const rateTop = axisTop(bitrate.filter((v) => v !== null), 100);
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
    "aria-label": "Mất gói và tốc độ · Loss and bitrate", "data-samples": samples.length });
  const bottom = HEIGHT - PAD.bottom;
  chart.append(
    svg("line", { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, stroke: "#c8ccd4" }),
    svg("text", { x: 4, y: PAD.top + 8 }, `${lossTop}%`),
    svg("text", { x: 4, y: bottom }, "0%"),
    svg("text", { x: WIDTH - PAD.right + 4, y: PAD.top + 8 }, `${rateTop} kb/s`),
    svg("text", { x: WIDTH - PAD.right + 4, y: bottom }, "0"),
  );
  if (samples.length) {
    const first = new Date(samples[0].at);
    const last = new Date(samples[samples.length - 1].at);
    const time = (d) => d.toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    chart.append(
      svg("text", { x: PAD.left, y: HEIGHT - 6 }, time(first)),
      svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end" }, time(last)),
    );
  }
  const lossPath = line(loss, lossTop);
  const ratePath = line(bitrate, rateTop);
  if (ratePath) chart.append(svg("path", { class: "bitrate", d: ratePath }));
  if (lossPath) chart.append(svg("path", { class: "loss", d: lossPath }));
  container.replaceChildren(chart);
  return chart;
}
