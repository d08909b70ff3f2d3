// One image, full size: zoom, its boxes drawn over it, its metadata to edit (sent with the
// revision it was read at, so that someone else's change is never silently overwritten), and
// what the service knows of its file.

import { graphql } from "./api.js";
import { ask } from "./dialogs.js";
import { describe } from "./grid.js";

export const FULL = `fragment Full on Image {
  id file time data revision size contentType width height checksum url downloadUrl
  thumbnailUrl(width: 256)
  exif { takenAt make model orientation gps { latitude longitude altitude } }
}`;
const DETAIL = `query Detail($id: ID!) { image(id: $id) { ...Full } }\n${FULL}`;
const REPLACE = `mutation Replace($id: ID!, $data: JSON!, $revision: Int) {
  replaceImageData(id: $id, data: $data, revision: $revision) { ...Full }
}\n${FULL}`;
const DELETE = `mutation Delete($id: ID!, $revision: Int) { deleteImage(id: $id, revision: $revision) }`;
const IDENTICAL = `query Identical($checksum: String!) {
  images(filter: { checksum: $checksum }, limit: 13) { total items { id file data thumbnailUrl(width: 128) } }
}`;

const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

export class Detail {
  constructor({ grid, onChanged, onDeleted }) {
    this.grid = grid;
    this.onChanged = onChanged;
    this.onDeleted = onDeleted;
    this.dialog = $("detail");
    this.image = null;
    this.theirs = null;
    this.dirty = false;
    this.zoom = "fit";
    this.scale = 1;
    this.full = $("full");
    this.stage = $("stage");
    this.meta = $("meta");
    this.dialog.addEventListener("click", (event) => this.clicked(event));
    this.dialog.addEventListener("keydown", (event) => this.key(event));
    this.dialog.addEventListener("close", () => this.closed());
    this.full.addEventListener("load", () => this.layout());
    this.stage.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    new ResizeObserver(() => this.zoom === "fit" && this.layout()).observe(this.stage);
    this.meta.addEventListener("input", () => (this.dirty = true));
    $("show-boxes").addEventListener("change", (event) => $("boxes").classList.toggle("hidden", !event.target.checked));
    $("meta-save").addEventListener("click", () => this.save(this.read));
    $("meta-reset").addEventListener("click", () => this.reload("Your edits were undone."));
    $("conflict-theirs-load").addEventListener("click", () => this.useTheirs());
    $("conflict-overwrite").addEventListener("click", () => this.save(this.theirs.revision));
    $("delete-one").addEventListener("click", () => this.remove());
  }

  get isOpen() {
    return this.dialog.open;
  }

  async open(image) {
    if (!this.dialog.open) this.dialog.showModal();
    this.zoom = "fit";
    this.show(image, { fresh: true });
    await this.reload();
  }

  async reload(note = "") {
    const id = this.image.id;
    try {
      const { image } = await graphql(DETAIL, { id });
      if (this.image?.id !== id) return;
      // Edits begun on the tile's copy stay, and so does the revision they were begun on.
      this.show(image, { fresh: !this.dirty || Boolean(note) });
      this.say(note);
    } catch (error) {
      if (this.image?.id === id) this.say(error.message, true);
    }
  }

  show(image, { fresh = false } = {}) {
    const same = this.image?.id === image.id;
    this.image = { ...(same ? this.image : {}), ...image };
    if (fresh || !same) {
      // The revision the editor's text was read at: a save sends it, so that a change made by
      // someone else since is refused rather than overwritten.
      this.read = this.image.revision;
      this.dirty = false;
      this.theirs = null;
      $("conflict").hidden = true;
      this.say("");
      this.meta.value = JSON.stringify(this.image.data, null, 2);
    }
    $("meta-save").disabled = false;
    $("detail-title").textContent = this.image.file;
    if (this.full.getAttribute("src") !== this.image.url && this.image.url) this.full.src = this.image.url;
    this.full.alt = describe(this.image);
    this.drawBoxes();
    this.layout();
    this.facts();
    if (this.image.checksum !== this.shownChecksum || !same) this.identical();
    const download = $("download");
    download.href = this.image.downloadUrl ?? this.image.url ?? "#";
    download.setAttribute("download", this.image.file.split("/").pop());
  }

  say(text, problem = false) {
    const message = $("meta-message");
    message.textContent = text;
    message.classList.toggle("problem", problem);
  }

  size() {
    const width = this.image.width || this.full.naturalWidth || 1;
    const height = this.image.height || this.full.naturalHeight || 1;
    return [width, height];
  }

  layout() {
    if (!this.image) return; // the observer and a late image load fire after a close too
    const [width, height] = this.size();
    if (this.zoom === "fit") {
      const room = [this.stage.clientWidth - 16, this.stage.clientHeight - 16];
      this.scale = Math.max(0.01, Math.min(room[0] / width, room[1] / height));
    } else {
      this.scale = this.zoom;
    }
    const canvas = $("canvas");
    canvas.style.width = `${Math.round(width * this.scale)}px`;
    canvas.style.height = `${Math.round(height * this.scale)}px`;
    $("zoom-level").textContent = `${Math.round(this.scale * 100)}%`;
    // Labels keep one size on screen at any zoom, above their box where there is room for them
    // (inside it would hide the top of what the box marks).
    const tall = 17 / this.scale;
    for (const group of $("boxes").querySelectorAll("g")) {
      const top = Number(group.dataset.top);
      const y = top >= tall ? top - tall : top;
      group.querySelector("text")?.setAttribute("font-size", String(13 / this.scale));
      group.querySelector("text")?.setAttribute("y", String(y + 2 / this.scale));
      group.querySelector("text")?.setAttribute("x", String(Number(group.dataset.left) + 3 / this.scale));
      group.querySelector("rect.label-bg")?.setAttribute("height", String(tall));
      group.querySelector("rect.label-bg")?.setAttribute("y", String(y));
    }
  }

  setZoom(zoom) {
    this.zoom = zoom === "fit" ? "fit" : Math.min(16, Math.max(0.05, zoom));
    this.layout();
  }

  wheel(event) {
    if (!event.ctrlKey) return; // a plain wheel scrolls the zoomed image
    event.preventDefault();
    this.setZoom(this.scale * (event.deltaY < 0 ? 1.15 : 1 / 1.15));
  }

  drawBoxes() {
    const svg = $("boxes");
    const [width, height] = this.size();
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    const boxes = Array.isArray(this.image.data?.boxes) ? this.image.data.boxes : [];
    const shapes = [];
    for (const box of boxes) {
      if (!box || ![box.x, box.y, box.w, box.h].every(Number.isFinite)) continue;
      const group = document.createElementNS(SVG, "g");
      group.setAttribute("class", `box hue-${hue(box.label)}`);
      group.dataset.top = String(box.y);
      group.dataset.left = String(box.x);
      const rect = document.createElementNS(SVG, "rect");
      for (const [name, value] of Object.entries({ x: box.x, y: box.y, width: box.w, height: box.h })) {
        rect.setAttribute(name, String(value));
      }
      rect.setAttribute("vector-effect", "non-scaling-stroke");
      group.append(rect);
      if (box.label != null) {
        const caption = `${box.label}${Number.isFinite(box.score) ? ` ${Math.round(box.score * 100)}%` : ""}`;
        const background = document.createElementNS(SVG, "rect");
        background.setAttribute("class", "label-bg");
        background.setAttribute("x", String(box.x));
        background.setAttribute("width", String(Math.max(box.w, 1)));
        const text = document.createElementNS(SVG, "text");
        text.setAttribute("dominant-baseline", "hanging");
        text.textContent = caption;
        group.append(background, text);
      }
      shapes.push(group);
    }
    svg.replaceChildren(...shapes);
    $("show-boxes").parentElement.hidden = shapes.length === 0;
  }

  facts() {
    const image = this.image;
    const rows = [
      ["File", image.file],
      ["Size", image.size == null ? "unknown" : bytes(image.size)],
      ["Type", image.contentType ?? "unknown"],
      ["Pixels", image.width ? `${image.width} × ${image.height}` : "unknown"],
      ["Time", image.time ? new Date(image.time).toLocaleString() : "none"],
      ["Checksum", image.checksum ? `SHA-256 ${image.checksum}` : "not known yet"],
      ["Revision", String(image.revision)],
      ["Id", image.id],
    ];
    fill($("file-facts"), rows);
    const exif = image.exif;
    const gps = exif?.gps;
    fill(
      $("exif"),
      exif
        ? [
            ["Taken", exif.takenAt ? new Date(exif.takenAt).toLocaleString() : null],
            ["Camera", [exif.make, exif.model].filter(Boolean).join(" ") || null],
            ["Orientation", exif.orientation],
            ["Position", gps ? `${gps.latitude.toFixed(5)}, ${gps.longitude.toFixed(5)}${gps.altitude == null ? "" : `, ${gps.altitude} m`}` : null],
          ].filter(([, value]) => value != null)
        : [["", "none in this file"]],
    );
  }

  async identical() {
    const list = $("duplicates");
    const { id, checksum } = this.image;
    this.shownChecksum = checksum;
    if (!checksum) {
      list.replaceChildren(note("Not known until the checksum is."));
      return;
    }
    try {
      const { images } = await graphql(IDENTICAL, { checksum });
      if (this.image?.id !== id) return;
      const others = images.items.filter((item) => item.id !== id);
      if (!others.length) {
        list.replaceChildren(note("None: no other image holds these bytes."));
        return;
      }
      list.replaceChildren(
        ...others.map((other) => {
          const item = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.title = other.file;
          const picture = document.createElement("img");
          picture.src = other.thumbnailUrl;
          picture.alt = describe(other);
          button.append(picture);
          button.addEventListener("click", () => this.open(other));
          item.append(button);
          return item;
        }),
      );
      if (images.total - 1 > others.length) list.append(note(`and ${images.total - 1 - others.length} more`));
    } catch (error) {
      list.replaceChildren(note(error.message));
    }
  }

  async save(revision) {
    let data;
    try {
      data = JSON.parse(this.meta.value);
    } catch (error) {
      this.say(`Not saved: the metadata is not valid JSON (${error.message}).`, true);
      return;
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      this.say("Not saved: metadata is a JSON object, {…}.", true);
      return;
    }
    const id = this.image.id;
    $("meta-save").disabled = true;
    try {
      const { replaceImageData: image } = await graphql(REPLACE, { id, data, revision });
      this.show(image, { fresh: true });
      this.say(`Saved (revision ${image.revision}).`);
      this.onChanged(image);
    } catch (error) {
      if (error.has("STALE_REVISION")) await this.conflict(id);
      else if (error.has("NOT_FOUND")) this.say("Not saved: this image has been deleted.", true);
      else this.say(`Not saved: ${error.message}`, true);
    } finally {
      $("meta-save").disabled = false;
    }
  }

  // Someone else's change came first: show theirs beside ours and let the person choose.
  async conflict(id) {
    try {
      const { image } = await graphql(DETAIL, { id });
      this.theirs = image;
      $("conflict-theirs").textContent = JSON.stringify(image.data, null, 2);
      $("conflict").hidden = false;
      this.say(`Your edits are kept above; the image is at revision ${image.revision} now, you read ${this.read}.`, true);
      $("conflict").scrollIntoView({ block: "nearest" });
    } catch (error) {
      this.say(`Not saved: someone else changed it, and it cannot be read again: ${error.message}`, true);
    }
  }

  useTheirs() {
    if (!this.theirs) return;
    this.show(this.theirs, { fresh: true });
    this.say("Showing their version; your edits were dropped.");
  }

  // A live event about the image on show.
  changed(kind, image) {
    if (!this.dialog.open || this.image?.id !== image.id) return;
    if (kind === "DELETED") {
      this.say("Someone else deleted this image.", true);
      $("meta-save").disabled = true;
    } else if (!this.dirty && image.revision !== this.read) {
      this.show(image, { fresh: true });
      this.say("Someone else changed this image just now: this is the new version.");
    } else if (image.revision !== this.read) {
      this.say("Someone else changed this image while you were editing; saving will show both versions.", true);
    }
  }

  async remove() {
    const { id, file, revision } = this.image;
    const answer = await ask({
      title: "Delete this image?",
      text: `${file} and its file will be deleted for everyone. This cannot be undone.`,
      ok: "Delete",
      danger: true,
      act: () => graphql(DELETE, { id, revision }),
    });
    if (!answer) return;
    const next = this.grid.neighbour(id, 1) ?? this.grid.neighbour(id, -1);
    this.onDeleted(id);
    if (next) this.open(next);
    else this.dialog.close();
  }

  step(direction) {
    const other = this.image && this.grid.neighbour(this.image.id, direction);
    if (other) this.open(other);
  }

  clicked(event) {
    const action = event.target.closest("[data-action]")?.dataset.action;
    if (action === "close") this.dialog.close();
    else if (action === "previous") this.step(-1);
    else if (action === "next") this.step(1);
    const zoom = event.target.closest("[data-zoom]")?.dataset.zoom;
    if (zoom === "in") this.setZoom(this.scale * 1.25);
    else if (zoom === "out") this.setZoom(this.scale / 1.25);
    else if (zoom === "fit") this.setZoom("fit");
    else if (zoom === "actual") this.setZoom(1);
  }

  key(event) {
    if (event.target.closest("textarea, input, select")) return;
    const keys = { ArrowLeft: () => this.step(-1), ArrowRight: () => this.step(1), "+": () => this.setZoom(this.scale * 1.25), "=": () => this.setZoom(this.scale * 1.25), "-": () => this.setZoom(this.scale / 1.25), 0: () => this.setZoom("fit") };
    if (keys[event.key]) {
      event.preventDefault();
      keys[event.key]();
    }
  }

  closed() {
    const id = this.image?.id;
    this.image = null;
    this.shownChecksum = undefined;
    this.full.removeAttribute("src");
    if (id) this.grid.focus(id); // back where the person was
  }
}

function fill(list, rows) {
  list.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      return [dt, dd];
    }),
  );
}

function note(text) {
  const item = document.createElement("li");
  item.className = "note";
  item.textContent = text;
  return item;
}

function bytes(count) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${count} bytes`;
}

// One of eight colours per label, so the same label has the same colour on every image.
function hue(label) {
  let sum = 0;
  for (const character of String(label ?? "")) sum = (sum * 31 + character.codePointAt(0)) % 9973;
  return sum % 8;
}
