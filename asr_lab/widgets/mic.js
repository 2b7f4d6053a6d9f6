// asr_lab live microphone panel: the browser half of asr_lab.widgets.LiveMicPanel.
//
// What it does: on a click of Start (browsers only open audio after a user gesture) it
// opens the microphone with getUserMedia, runs it through an AudioWorklet that cuts the
// signal into int16 chunks of `chunk_sec` at 16 kHz, and sends each chunk to the kernel as
// one binary comm buffer: model.send({type: "audio", seq, rate}, undefined, [buffer]).
// Everything else (the transcript, the lag, the drops) is computed in the kernel and
// arrives here as widget state; this file only draws it. The level meter is computed here,
// from the chunks about to be sent, so it reacts without a round trip.
//
// Messages to the kernel: {type: "start", rate, chunk_sec}, {type: "audio", seq, rate} +
// one ArrayBuffer of little-endian int16 samples, {type: "stop", seq} (seq = chunks sent),
// {type: "error", message} when the microphone cannot be opened.

const TARGET_RATE = 16000;

// The AudioWorklet runs on the audio thread; it is loaded from a Blob URL so that the
// widget needs no extra file served by Jupyter. If the AudioContext could not be created
// at 16 kHz (some browsers refuse), it decimates by averaging (a box filter) to 16 kHz.
const WORKLET_SOURCE = `
class AsrLabCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.chunk = o.chunkSamples;
    this.target = o.targetRate;
    this.ratio = sampleRate / this.target;      // input samples per output sample
    this.buf = new Float32Array(this.chunk);
    this.n = 0;
    this.acc = 0; this.cnt = 0; this.phase = 0;  // resampling state (only when ratio != 1)
    this.port.onmessage = (e) => {
      if (e.data === "flush") { this.flush(); this.port.postMessage("flushed"); }
    };
  }
  push(x) {
    this.buf[this.n++] = x;
    if (this.n === this.chunk) this.flush();
  }
  flush() {
    if (this.n === 0) return;
    // a fresh buffer for every chunk: it is transferred, which empties the original
    const out = new Int16Array(this.n);
    for (let i = 0; i < this.n; i++) {
      const s = Math.max(-1, Math.min(1, this.buf[i]));
      out[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
    }
    this.n = 0;
    this.port.postMessage(out.buffer, [out.buffer]);
  }
  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const len = input[0].length, chans = input.length;
    for (let i = 0; i < len; i++) {
      let x = 0;
      for (let c = 0; c < chans; c++) x += input[c][i];
      x /= chans;
      if (this.ratio === 1) { this.push(x); continue; }
      this.acc += x; this.cnt += 1; this.phase += 1;
      if (this.phase >= this.ratio) {
        this.push(this.acc / this.cnt);
        this.acc = 0; this.cnt = 0; this.phase -= this.ratio;
      }
    }
    return true;
  }
}
registerProcessor("asr-lab-capture", AsrLabCapture);
`;

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtSec(v, digits = 2) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${v.toFixed(digits)} s`;
}

function render({ model, el }) {
  const root = h("div", "asr-lab-mic");
  el.appendChild(root);

  // -- layout ------------------------------------------------------------------------
  const bar = h("div", "asr-lab-mic-bar");
  const backend = h("select", "asr-lab-mic-backend");
  backend.title = "speech recognition backend";
  const start = h("button", "asr-lab-mic-start", "● Start");
  const stop = h("button", "asr-lab-mic-stop", "■ Stop");
  const status = h("span", "asr-lab-mic-status");
  bar.append(backend, start, stop, status);

  const meterBox = h("div", "asr-lab-mic-meter");
  meterBox.title = "input level (dBFS of each chunk sent)";
  const meterFill = h("div", "asr-lab-mic-meter-fill");
  const meterText = h("span", "asr-lab-mic-meter-text", "level –");
  meterBox.append(meterFill, meterText);

  const transcript = h("div", "asr-lab-mic-transcript");
  const committed = h("span", "asr-lab-mic-committed");
  const partial = h("span", "asr-lab-mic-partial");
  transcript.append(committed, partial);

  const stats = h("div", "asr-lab-mic-stats");
  const stat = (name, title) => {
    const box = h("span", "asr-lab-mic-stat");
    box.title = title;
    const value = h("b", `asr-lab-mic-${name}`);
    box.append(h("span", "", `${name} `), value);
    stats.append(box);
    return value;
  };
  const lag = stat("lag", "audio captured when the newest text appeared, minus the end of the audio it transcribes");
  const backlog = stat("backlog", "audio that has reached the kernel and waits for the engine");
  const received = stat("received", "audio received by the kernel in this session");
  const dropped = stat("dropped", "chunks thrown away because the engine fell too far behind (the queue was full)");
  const chunk = stat("chunk", "audio per message sent to the kernel");
  const errorLine = h("div", "asr-lab-mic-error");
  root.append(bar, meterBox, transcript, stats, errorLine);

  // -- capture state (per view) ---------------------------------------------------------
  let ctx = null, stream = null, node = null, source = null, seq = 0, capturing = false;
  let localError = "";

  function setLevel(db) {
    const frac = Math.max(0, Math.min(1, (db + 60) / 60));
    meterFill.style.width = `${(frac * 100).toFixed(0)}%`;
    meterText.textContent = db <= -99 ? "level –" : `level ${db.toFixed(0)} dBFS`;
  }

  function onChunk(e) {
    if (e.data === "flushed") { finishStop(true); return; }
    if (!capturing) return;
    const buffer = e.data;  // a fresh ArrayBuffer from the worklet
    const pcm = new Int16Array(buffer);
    let sum = 0;
    for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
    const rms = Math.sqrt(sum / Math.max(1, pcm.length)) / 32768;
    setLevel(rms > 0 ? 20 * Math.log10(rms) : -100);  // before send: sending transfers (empties) it
    model.send({ type: "audio", seq: seq, rate: TARGET_RATE }, undefined, [buffer]);
    seq += 1;
  }

  async function startCapture() {
    if (capturing) return;
    localError = "";
    const chunkSec = model.get("chunk_sec");
    capturing = true;
    seq = 0;
    draw();
    try {
      // Created inside the click handler: browsers only let audio start after a user gesture.
      try {
        ctx = new AudioContext({ sampleRate: TARGET_RATE });
      } catch (err) {
        ctx = new AudioContext();  // the worklet resamples to 16 kHz
      }
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      });
      const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: "application/javascript" }));
      try {
        await ctx.audioWorklet.addModule(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      node = new AudioWorkletNode(ctx, "asr-lab-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        processorOptions: { chunkSamples: Math.round(chunkSec * TARGET_RATE), targetRate: TARGET_RATE },
      });
      node.port.onmessage = onChunk;
      model.send({ type: "start", rate: TARGET_RATE, chunk_sec: chunkSec, context_rate: ctx.sampleRate });
      source = ctx.createMediaStreamSource(stream);
      source.connect(node);
      if (ctx.state === "suspended") await ctx.resume();
    } catch (err) {
      const message = `${err && err.name ? err.name + ": " : ""}${err && err.message ? err.message : err}`;
      localError = `microphone could not be opened (${message}); allow microphone access for this page ` +
        `(it needs https or localhost) and click Start again`;
      model.send({ type: "error", message: localError });
      releaseAudio();
      capturing = false;
      draw();
    }
  }

  let stopTimer = null;
  function stopCapture() {
    if (!capturing) return;
    if (node) {
      // ask the worklet for the last, shorter chunk; finishStop runs when it answers
      node.port.postMessage("flush");
      stopTimer = setTimeout(() => finishStop(true), 1000);
    } else {
      finishStop(true);
    }
  }

  function finishStop(tellKernel) {
    if (stopTimer) { clearTimeout(stopTimer); stopTimer = null; }
    if (!capturing) return;
    capturing = false;
    releaseAudio();
    if (tellKernel) model.send({ type: "stop", seq: seq });
    setLevel(-100);
    draw();
  }

  function releaseAudio() {
    try { if (source) source.disconnect(); } catch (e) { /* already gone */ }
    try { if (node) node.port.onmessage = null; } catch (e) { /* already gone */ }
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ctx && ctx.state !== "closed") ctx.close();
    ctx = stream = node = source = null;
  }

  // -- drawing widget state ---------------------------------------------------------------
  function draw() {
    const names = model.get("backends") || [];
    const current = model.get("backend");
    if (backend.options.length !== names.length || names.some((n, i) => backend.options[i].value !== n)) {
      backend.replaceChildren(...names.map((n) => { const o = h("option", "", n); o.value = n; return o; }));
    }
    backend.value = current;
    const st = model.get("status");
    const busy = capturing || st === "starting" || st === "listening" || st === "finishing";
    backend.disabled = busy || model.get("backend_locked");
    start.disabled = busy;
    stop.disabled = !capturing;
    status.textContent = capturing && st === "idle" ? "opening microphone…" : st;
    status.dataset.status = st;
    committed.textContent = model.get("committed");
    const part = model.get("partial");
    partial.textContent = part ? (model.get("committed") ? " " : "") + part : "";
    lag.textContent = fmtSec(model.get("lag_sec"));
    backlog.textContent = fmtSec(model.get("backlog_sec"));
    received.textContent = fmtSec(model.get("received_sec"), 1);
    const nd = model.get("dropped_chunks");
    dropped.textContent = `${nd} (${fmtSec(model.get("dropped_sec"), 1)})`;
    dropped.classList.toggle("asr-lab-mic-bad", nd > 0);
    chunk.textContent = `${Math.round(model.get("chunk_sec") * 1000)} ms`;
    errorLine.textContent = localError || model.get("error");
  }

  function onStatus() {
    // the kernel ended the session (stop(), an engine error): stop sending audio
    const st = model.get("status");
    if (capturing && (st === "finishing" || st === "error")) finishStop(false);
    draw();
  }

  backend.addEventListener("change", () => {
    model.set("backend", backend.value);
    model.save_changes();
  });
  start.addEventListener("click", startCapture);
  stop.addEventListener("click", stopCapture);
  const fields = ["backends", "backend", "backend_locked", "committed", "partial", "lag_sec", "backlog_sec",
    "received_sec", "dropped_chunks", "dropped_sec", "chunk_sec", "error"];
  for (const f of fields) model.on(`change:${f}`, draw);
  model.on("change:status", onStatus);
  draw();

  return () => {
    // the view is removed (cell cleared, notebook closed): release the microphone
    for (const f of fields) model.off(`change:${f}`, draw);
    model.off("change:status", onStatus);
    if (capturing) finishStop(true);
  };
}

export default { render };
