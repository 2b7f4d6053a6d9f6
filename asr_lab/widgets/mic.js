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
// The microphone capture itself (AudioWorklet, 16 kHz int16 chunks) is capture.js, which
// the kernel side prepends to this file.
//
// Messages to the kernel: {type: "start", rate, chunk_sec}, {type: "audio", seq, rate} +
// one ArrayBuffer of little-endian int16 samples, {type: "stop", seq} (seq = chunks sent),
// {type: "error", message} when the microphone cannot be opened.

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
  let capture = null, seq = 0, capturing = false, stopping = false;
  let localError = "";

  function setLevel(db) {
    const frac = Math.max(0, Math.min(1, (db + 60) / 60));
    meterFill.style.width = `${(frac * 100).toFixed(0)}%`;
    meterText.textContent = db <= -99 ? "level –" : `level ${db.toFixed(0)} dBFS`;
  }

  function onChunk(buffer) {
    if (!capturing) return;
    const pcm = new Int16Array(buffer);  // a fresh ArrayBuffer from the worklet
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
      capture = await asrLabStartCapture({ chunkSec, onChunk });
      model.send({ type: "start", rate: TARGET_RATE, chunk_sec: chunkSec, context_rate: capture.contextRate });
    } catch (err) {
      const message = `${err && err.name ? err.name + ": " : ""}${err && err.message ? err.message : err}`;
      localError = `microphone could not be opened (${message}); allow microphone access for this page ` +
        `(it needs https or localhost) and click Start again`;
      model.send({ type: "error", message: localError });
      capture = null;
      capturing = false;
      draw();
    }
  }

  async function stopCapture() {
    if (!capturing || stopping) return;
    stopping = true;
    if (capture) await capture.stop();  // the last, shorter chunk arrives before this resolves
    finishStop(true);
  }

  function finishStop(tellKernel) {
    stopping = false;
    if (!capturing) return;
    capturing = false;
    if (capture) { capture.release(); capture = null; }
    if (tellKernel) model.send({ type: "stop", seq: seq });
    setLevel(-100);
    draw();
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
