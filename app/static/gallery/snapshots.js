// Snapshots: the images shown now frozen under a name, what changed between two, and a link
// to download one as an archive.

import { graphql } from "./api.js";
import { ask } from "./dialogs.js";

const LIST = `query Snapshots { snapshots { name count created } }`;
const CREATE = `mutation Create($name: String!, $filter: ImageFilter, $view: String) {
  createSnapshot(name: $name, filter: $filter, view: $view) { name count }
}`;
const DIFF = `query Diff($name: String!, $other: String!) {
  snapshotDiff(name: $name, other: $other, limit: 1) { added { count } removed { count } changed { count } }
}`;
const EXPORT = `query Export($snapshot: String!) { exportUrl(snapshot: $snapshot) }`;
const DELETE = `mutation Delete($name: String!) { deleteSnapshot(name: $name) }`;

const $ = (id) => document.getElementById(id);

export class Snapshots {
  constructor({ currentFilter }) {
    this.currentFilter = currentFilter;
    this.dialog = $("snapshots");
    this.names = [];
    this.dialog.querySelector('[data-action="close"]').addEventListener("click", () => this.dialog.close());
    $("snapshot-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create();
    });
  }

  async open() {
    if (!this.dialog.open) this.dialog.showModal();
    $("snapshot-diff").textContent = "";
    await this.list();
  }

  say(text, problem = false) {
    const message = $("snapshot-message");
    message.textContent = text;
    message.classList.toggle("problem", problem);
  }

  async list() {
    try {
      const { snapshots } = await graphql(LIST);
      this.names = snapshots.map((snapshot) => snapshot.name);
      $("snapshot-rows").replaceChildren(...snapshots.map((snapshot) => this.row(snapshot)));
      if (!snapshots.length) this.say("No snapshots yet.");
    } catch (error) {
      this.say(error.message, true);
    }
  }

  row(snapshot) {
    const row = document.createElement("tr");
    const cell = (content) => {
      const td = document.createElement("td");
      td.append(content);
      row.append(td);
      return td;
    };
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = snapshot.name;
    row.append(name);
    cell(snapshot.count == null ? "being made" : snapshot.count.toLocaleString());
    cell(new Date(snapshot.created).toLocaleString());
    const compare = document.createElement("select");
    compare.setAttribute("aria-label", `Compare ${snapshot.name} with`);
    compare.append(new Option("with…", ""));
    for (const other of this.names) if (other !== snapshot.name) compare.append(new Option(other, other));
    compare.addEventListener("change", () => compare.value && this.diff(snapshot.name, compare.value));
    cell(compare);
    const actions = cell(document.createTextNode(""));
    const download = button("Export", () => this.export(snapshot.name));
    const remove = button("Delete…", () => this.remove(snapshot.name));
    remove.classList.add("danger");
    actions.append(download, " ", remove);
    return row;
  }

  async create() {
    const name = $("snapshot-name").value.trim();
    const { filter, view } = this.currentFilter();
    this.say("Freezing…");
    try {
      const { createSnapshot } = await graphql(CREATE, { name, filter, view });
      this.say(`${createSnapshot.name}: ${createSnapshot.count ?? 0} images frozen.`);
      $("snapshot-name").value = "";
      await this.list();
    } catch (error) {
      this.say(error.message, true);
    }
  }

  async diff(name, other) {
    const out = $("snapshot-diff");
    try {
      const { snapshotDiff: diff } = await graphql(DIFF, { name, other });
      out.classList.remove("problem");
      out.textContent = `From ${name} to ${other}: ${diff.added.count} added, ${diff.removed.count} removed, ${diff.changed.count} changed.`;
    } catch (error) {
      out.textContent = error.message;
      out.classList.add("problem");
    }
  }

  async export(snapshot) {
    try {
      const { exportUrl } = await graphql(EXPORT, { snapshot });
      // The archive comes as an attachment: the browser downloads it and stays on the page.
      const link = document.createElement("a");
      link.href = exportUrl;
      link.download = `${snapshot}.zip`;
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) {
      this.say(error.message, true);
    }
  }

  async remove(name) {
    const answer = await ask({
      title: `Delete snapshot ${name}?`,
      text: "The snapshot goes; the images themselves stay.",
      ok: "Delete",
      danger: true,
      act: () => graphql(DELETE, { name }),
    });
    if (answer) await this.list();
  }
}

function button(text, action) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.addEventListener("click", action);
  return element;
}
