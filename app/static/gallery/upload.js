// Uploads: files dropped anywhere on the page or chosen, each sent as its own request (three at
// a time) with a progress bar, all with the same metadata. A failed file says why and leaves
// the others going.

import { uploadFile } from "./api.js";

const PARALLEL = 3;
const $ = (id) => document.getElementById(id);

export class Uploader {
  constructor({ fragment, onUploaded }) {
    this.fragment = fragment;
    this.onUploaded = onUploaded;
    this.entries = [];
    this.dialog = $("upload");
    this.list = $("upload-list");
    $("files").addEventListener("change", (event) => {
      this.add(event.target.files);
      event.target.value = ""; // the same file can be chosen again
    });
    $("upload-start").addEventListener("click", () => this.start());
    $("upload-clear").addEventListener("click", () => this.clearFinished());
    this.dialog.querySelector('[data-action="close"]').addEventListener("click", () => this.dialog.close());
    this.acceptDrops();
  }

  open() {
    if (!this.dialog.open) this.dialog.showModal();
  }

  add(files) {
    for (const file of files) {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = file.name;
      const progress = document.createElement("progress");
      progress.max = 1;
      progress.value = 0;
      progress.setAttribute("aria-label", `${file.name} sent`);
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = `Ready, ${Math.ceil(file.size / 1000)} KB`;
      item.append(name, progress, state);
      this.list.append(item);
      this.entries.push({ file, item, progress, state, status: "ready" });
    }
    this.refresh();
    this.open();
  }

  refresh() {
    const ready = this.entries.filter((entry) => entry.status === "ready").length;
    const button = $("upload-start");
    button.disabled = ready === 0;
    button.textContent = ready ? `Upload ${ready} file${ready === 1 ? "" : "s"}` : "Upload";
  }

  metadata() {
    const text = $("upload-meta").value.trim();
    if (!text) return null;
    let data;
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new Error(`The metadata is not valid JSON (${error.message}).`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new Error('The metadata is a JSON object, such as {"label": "cat"}.');
    }
    return data;
  }

  async start() {
    const message = $("upload-message");
    let data;
    try {
      data = this.metadata();
    } catch (error) {
      message.textContent = error.message;
      return;
    }
    message.textContent = "";
    const queue = this.entries.filter((entry) => entry.status === "ready");
    for (const entry of queue) {
      entry.status = "queued";
      entry.state.textContent = "Waiting";
    }
    this.refresh();
    const worker = async () => {
      for (let entry = queue.shift(); entry; entry = queue.shift()) await this.send(entry, data);
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const failed = this.entries.filter((entry) => entry.status === "failed").length;
    message.textContent = failed ? `${failed} file${failed === 1 ? "" : "s"} not stored: the reasons are beside them.` : "";
  }

  async send(entry, data) {
    entry.status = "sending";
    entry.state.textContent = "Sending";
    const { promise } = uploadFile(entry.file, data, this.fragment, (fraction) => {
      entry.progress.value = fraction;
      entry.state.textContent = `${Math.round(fraction * 100)}%`;
    });
    try {
      const image = await promise;
      entry.status = "done";
      entry.progress.value = 1;
      entry.state.textContent = "Stored";
      entry.item.classList.add("done");
      this.onUploaded(image);
    } catch (error) {
      entry.status = "failed";
      entry.state.textContent = error.message;
      entry.item.classList.add("failed");
    }
  }

  clearFinished() {
    for (const entry of this.entries.filter((each) => each.status === "done" || each.status === "failed")) {
      entry.item.remove();
    }
    this.entries = this.entries.filter((entry) => entry.item.isConnected);
    $("upload-message").textContent = "";
    this.refresh();
  }

  // The whole page takes files: a person drags them from their desktop onto the grid.
  acceptDrops() {
    const overlay = $("drop-overlay");
    const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
    window.addEventListener("dragenter", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      if (!this.dialog.open) overlay.hidden = false;
    });
    window.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    overlay.addEventListener("dragleave", (event) => {
      if (event.target === overlay) overlay.hidden = true;
    });
    window.addEventListener("drop", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      overlay.hidden = true;
      if (event.dataTransfer.files.length) this.add(event.dataTransfer.files);
    });
  }
}
