// The noise-level animation of the explorer's "Noise levels" page (explorer/animation.py).
//
// Self-contained (no library, no network): every frame arrives once, in the page, as
// base64 typed arrays; the browser interpolates between consecutive sigma frames and
// writes small square points straight into an ImageData buffer, so a frame of 50,000 points
// costs a few milliseconds of plain array work and never a server rerun.
//
// `window.dmd2vizAnimation` exposes a frame counter ({frames, fps, playing, t, points})
// for the browser tests and the benchmark (benchmarks/bench_animation.py).
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("dmd2viz-data").textContent);
  const MISSING = 65535; // a coordinate that was not computed (NaN in the lake)
  const Q = 65534; // quantisation steps across the extent

  function decode(b64, Type) {
    const raw = atob(b64);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  const n = data.n, S = data.sigmas.length;
  const coords = decode(data.coords, Uint16Array); // (S, n, 2), frame order: high sigma first
  const codes = decode(data.codes, Uint8Array); // (n,) index into data.palette
  // Colours as little-endian RGBA words for the Uint32 view of the pixel buffer.
  const palette = new Uint32Array(data.palette.map((hex) => {
    const v = parseInt(hex.slice(1), 16);
    return (0xff << 24) | ((v & 0xff) << 16) | (v & 0xff00) | ((v >> 16) & 0xff);
  }));
  const canvas = document.getElementById("dmd2viz-canvas");
  const W = canvas.width, H = canvas.height;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(W, H);
  const pixels = new Uint32Array(image.data.buffer);
  const BACKGROUND = 0xffffffff;
  const P = data.point_pixels; // a point is a P x P square
  const sx = (W - P) / Q, sy = (H - P) / Q;

  const slider = document.getElementById("dmd2viz-slider");
  const button = document.getElementById("dmd2viz-play");
  const label = document.getElementById("dmd2viz-sigma");
  slider.max = String(S - 1);

  // drawMs: the mean time one frame's drawing takes (the headroom below the display's rate).
  const state = { frames: 0, fps: 0, drawMs: 0, playing: false, t: 0, points: n, sigmas: data.sigmas };
  window.dmd2vizAnimation = state;
  const stamps = []; // draw times of the last second, for the fps figure

  function sigmaAt(t) {
    const i = Math.min(Math.floor(t), S - 1), j = Math.min(i + 1, S - 1), f = t - i;
    // Noise levels are log-spaced: interpolate the label in log sigma.
    return Math.exp(Math.log(data.sigmas[i]) * (1 - f) + Math.log(data.sigmas[j]) * f);
  }

  function draw(t) {
    const started = performance.now();
    const i = Math.min(Math.floor(t), S - 1), j = Math.min(i + 1, S - 1), f = t - i;
    const a = i * n * 2, b = j * n * 2;
    pixels.fill(BACKGROUND);
    for (let k = 0; k < n; k++) {
      let ax = coords[a + 2 * k], ay = coords[a + 2 * k + 1];
      let bx = coords[b + 2 * k], by = coords[b + 2 * k + 1];
      if (ax === MISSING) { if (bx === MISSING) continue; ax = bx; ay = by; }
      else if (bx === MISSING) { bx = ax; by = ay; }
      const px = ((ax + (bx - ax) * f) * sx) | 0;
      const py = (H - P - (ay + (by - ay) * f) * sy) | 0; // y up, as in the map
      const c = palette[codes[k]];
      const o = py * W + px;
      if (P === 2) { pixels[o] = c; pixels[o + 1] = c; pixels[o + W] = c; pixels[o + W + 1] = c; }
      else for (let dy = 0; dy < P; dy++) for (let dx = 0; dx < P; dx++) pixels[o + dy * W + dx] = c;
    }
    ctx.putImageData(image, 0, 0);
    const sigma = sigmaAt(t);
    label.textContent = "sigma = " + (sigma >= 10 ? sigma.toFixed(1) : sigma.toFixed(2)) + "  (step " + (t + 1).toFixed(2) + " of " + S + ")";
    const now = performance.now();
    stamps.push(now);
    while (stamps.length && stamps[0] < now - 1000) stamps.shift();
    state.drawMs = state.frames ? 0.9 * state.drawMs + 0.1 * (now - started) : now - started;
    state.frames += 1;
    state.fps = stamps.length > 1 ? (stamps.length - 1) * 1000 / (now - stamps[0]) : 0;
    state.t = t;
  }

  let last = null;
  function tick(now) {
    if (!state.playing) return;
    if (last !== null) {
      // data.levels_per_second sigma levels a second; loop back to the highest sigma at the end.
      let t = state.t + (now - last) / 1000 * data.levels_per_second;
      if (t > S - 1) t = 0;
      slider.value = String(t);
      draw(t);
    }
    last = now;
    requestAnimationFrame(tick);
  }

  function setPlaying(on) {
    state.playing = on;
    button.textContent = on ? "Pause" : "Play";
    last = null;
    if (on) requestAnimationFrame(tick);
  }

  button.addEventListener("click", () => setPlaying(!state.playing));
  slider.addEventListener("input", () => { setPlaying(false); draw(parseFloat(slider.value)); });
  draw(0);
})();
