// asr_lab browser capture: microphone -> 16 kHz int16 chunks, shared by the notebook's live
// panel (mic.js) and the server's page (asr_lab/web/page.html). It is plain script text,
// prepended to each of them, so neither needs another file served.
//
// asrLabStartCapture({chunkSec, onChunk}) opens the microphone (call it from a click:
// browsers only start audio after a user gesture), runs it through an AudioWorklet that
// cuts it into int16 chunks of chunkSec at 16 kHz, and calls onChunk(arrayBuffer) with a
// fresh ArrayBuffer per chunk (safe to transfer). It resolves to {contextRate, stop()};
// stop() flushes the last, shorter chunk, then releases the microphone.

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

async function asrLabStartCapture({ chunkSec, onChunk }) {
  let ctx = null, stream = null, node = null, source = null, onFlushed = null;
  function release() {
    try { if (source) source.disconnect(); } catch (e) { /* already gone */ }
    try { if (node) node.port.onmessage = null; } catch (e) { /* already gone */ }
    if (stream) stream.getTracks().forEach((t) => t.stop());
    if (ctx && ctx.state !== "closed") ctx.close();
    ctx = stream = node = source = null;
  }
  try {
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
    node.port.onmessage = (e) => {
      if (e.data === "flushed") { if (onFlushed) onFlushed(); return; }
      onChunk(e.data);
    };
    source = ctx.createMediaStreamSource(stream);
    source.connect(node);
    if (ctx.state === "suspended") await ctx.resume();
  } catch (err) {
    release();
    throw err;
  }
  const contextRate = ctx.sampleRate;
  return {
    contextRate,
    stop() {
      // ask the worklet for the last, shorter chunk, then release (at most 1 s later)
      return new Promise((resolve) => {
        if (!node) { release(); resolve(); return; }
        const done = () => { clearTimeout(timer); onFlushed = null; release(); resolve(); };
        const timer = setTimeout(done, 1000);
        onFlushed = done;
        node.port.postMessage("flush");
      });
    },
    release,
  };
}
