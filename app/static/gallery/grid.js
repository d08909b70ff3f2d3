// The grid of thumbnails: tiles in the order the pages came, kept up to date by live events,
// with a roving tab stop so that arrow keys move between tiles as in any grid.

export function labelOf(data) {
  const label = data?.label;
  if (Array.isArray(label)) return label.filter((item) => typeof item !== "object").join(", ");
  return label == null || typeof label === "object" ? "" : String(label);
}

export function describe(image) {
  const label = labelOf(image.data);
  return label ? `${image.file}, label ${label}` : image.file;
}

export class Grid {
  constructor(list, { onOpen, onSelection, onNearEnd }) {
    this.list = list;
    this.tiles = new Map();
    this.selected = new Set();
    this.onOpen = onOpen;
    this.onSelection = onSelection;
    this.onNearEnd = onNearEnd;
    list.addEventListener("click", (event) => this.clicked(event));
    list.addEventListener("keydown", (event) => this.key(event));
  }

  get size() {
    return this.tiles.size;
  }

  has(id) {
    return this.tiles.has(id);
  }

  image(id) {
    return this.tiles.get(id)?.image;
  }

  clear() {
    this.list.replaceChildren();
    this.tiles.clear();
    this.selected.clear();
    this.onSelection(this.selected);
  }

  append(images) {
    const fragment = document.createDocumentFragment();
    for (const image of images) {
      if (this.tiles.has(image.id)) this.update(image);
      else fragment.append(this.tile(image));
    }
    this.list.append(fragment);
    this.rove();
  }

  prepend(image) {
    if (this.tiles.has(image.id)) return this.update(image);
    const tile = this.tile(image);
    tile.classList.add("fresh");
    this.list.prepend(tile);
    this.rove();
  }

  update(image) {
    const tile = this.tiles.get(image.id);
    if (tile) this.fill(tile, image);
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const hadFocus = tile.contains(document.activeElement);
    const next = tile.nextElementSibling ?? tile.previousElementSibling;
    tile.remove();
    this.tiles.delete(id);
    if (this.selected.delete(id)) this.onSelection(this.selected);
    this.rove();
    if (hadFocus && next) next.querySelector(".tile").focus();
  }

  // The image `step` places from `id` in the grid's order, for the detail view's ‹ and ›.
  neighbour(id, step) {
    const tile = this.tiles.get(id);
    let other = tile;
    for (let count = Math.abs(step); other && count > 0; count--) {
      other = step > 0 ? other.nextElementSibling : other.previousElementSibling;
    }
    return other && other !== tile ? other.image : null;
  }

  focus(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    this.rove(tile);
    tile.querySelector(".tile").focus();
  }

  clearSelection() {
    for (const id of this.selected) this.tiles.get(id)?.classList.remove("selected");
    for (const box of this.list.querySelectorAll(".pick:checked")) box.checked = false;
    this.selected.clear();
    this.onSelection(this.selected);
  }

  tile(image) {
    const item = document.createElement("li");
    item.dataset.id = image.id;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile";
    button.tabIndex = -1;
    button.setAttribute("aria-haspopup", "dialog");
    const picture = document.createElement("img");
    picture.loading = "lazy";
    picture.decoding = "async";
    const caption = document.createElement("span");
    caption.className = "caption";
    caption.setAttribute("aria-hidden", "true");
    button.append(picture, caption);
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.className = "pick";
    pick.tabIndex = -1; // Space on the tile selects; one tab stop per tile keeps the grid quick
    item.append(button, pick);
    this.tiles.set(image.id, item);
    this.fill(item, image);
    return item;
  }

  fill(item, image) {
    item.image = image;
    const picture = item.querySelector("img");
    const text = describe(image);
    if (picture.getAttribute("src") !== image.thumbnailUrl) picture.src = image.thumbnailUrl;
    picture.alt = text;
    item.querySelector(".caption").textContent = labelOf(image.data) || image.file.split("/").pop();
    item.querySelector(".pick").setAttribute("aria-label", `Select ${image.file}`);
    item.title = text;
  }

  // One tile is in the tab order: the focused one, else the first.
  rove(current) {
    const active = current ?? this.list.querySelector('.tile[tabindex="0"]')?.parentElement ?? this.list.firstElementChild;
    for (const button of this.list.querySelectorAll('.tile[tabindex="0"]')) button.tabIndex = -1;
    if (active) active.querySelector(".tile").tabIndex = 0;
  }

  toggle(item) {
    const id = item.dataset.id;
    const pick = item.querySelector(".pick");
    if (this.selected.has(id)) this.selected.delete(id);
    else this.selected.add(id);
    pick.checked = this.selected.has(id);
    item.classList.toggle("selected", pick.checked);
    this.onSelection(this.selected);
  }

  clicked(event) {
    const item = event.target.closest("li");
    if (!item) return;
    if (event.target.classList.contains("pick") || event.ctrlKey || event.metaKey || event.shiftKey) {
      if (!event.target.classList.contains("pick")) event.preventDefault();
      this.toggle(item);
      if (event.target.classList.contains("pick")) item.querySelector(".pick").checked = this.selected.has(item.dataset.id);
      return;
    }
    if (event.target.closest(".tile")) {
      this.rove(item);
      this.onOpen(item.image);
    }
  }

  columns() {
    const template = getComputedStyle(this.list).gridTemplateColumns;
    return Math.max(1, template.split(" ").filter(Boolean).length);
  }

  key(event) {
    if (!event.target.classList.contains("tile")) return;
    const item = event.target.parentElement;
    if (event.key === " ") {
      event.preventDefault();
      this.toggle(item);
      return;
    }
    const items = [...this.list.children];
    const at = items.indexOf(item);
    const columns = this.columns();
    const moves = {
      ArrowRight: at + 1,
      ArrowLeft: at - 1,
      ArrowDown: at + columns,
      ArrowUp: at - columns,
      Home: 0,
      End: items.length - 1,
      PageDown: at + columns * 3,
      PageUp: at - columns * 3,
    };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const target = Math.min(items.length - 1, Math.max(0, moves[event.key]));
    this.rove(items[target]);
    items[target].querySelector(".tile").focus();
    items[target].scrollIntoView({ block: "nearest" });
    if (items.length - target <= columns * 2) this.onNearEnd();
  }
}
