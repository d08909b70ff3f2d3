// The facet sidebar: how many of the shown images take each value of each metadata key and
// each content type. A click on a value narrows the grid to it (a chip above the grid); a
// second click, or the chip's ✕, widens it again.

import { graphql } from "./api.js";

// Every key costs the service a count over the matches, and a query may hold 20 aliases.
const MAX_KEYS = 15;
const VALUES = 12;
const OVERVIEW = `query Overview($filter: ImageFilter, $view: String) {
  fields(filter: $filter, view: $view)
  types: systemFacets(field: CONTENT_TYPE, filter: $filter, view: $view, limit: ${VALUES}) { value count }
}`;

export async function loadFacets(variables) {
  const { fields, types } = await graphql(OVERVIEW, variables);
  const keys = fields.slice(0, MAX_KEYS);
  let counted = {};
  if (keys.length) {
    const parameters = keys.map((_, at) => `$k${at}: String!`).join(", ");
    const selections = keys
      .map((_, at) => `f${at}: facets(field: $k${at}, filter: $filter, view: $view, limit: ${VALUES}) { value count }`)
      .join("\n");
    const query = `query Facets($filter: ImageFilter, $view: String, ${parameters}) {\n${selections}\n}`;
    const named = Object.fromEntries(keys.map((key, at) => [`k${at}`, key]));
    counted = await graphql(query, { ...variables, ...named });
  }
  const groups = [{ title: "Content type", path: "contentType", values: types }];
  keys.forEach((key, at) => {
    // Objects (a list of boxes, say) are no value to click on.
    const values = counted[`f${at}`].filter((facet) => facet.value === null || typeof facet.value !== "object");
    if (values.length) groups.push({ title: key, path: `data.${key}`, values });
  });
  return groups;
}

export function shown(value) {
  return value === null ? "(none)" : String(value);
}

export function renderFacets(nav, groups, isChosen, onToggle) {
  const sections = groups.map((group, number) => {
    const section = document.createElement("section");
    const heading = document.createElement("h2");
    heading.id = `facet-${number}`;
    heading.textContent = group.title;
    const list = document.createElement("ul");
    list.setAttribute("aria-labelledby", heading.id);
    for (const { value, count } of group.values) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("aria-pressed", String(isChosen(group.path, value)));
      const name = document.createElement("span");
      name.className = "value";
      name.textContent = shown(value);
      const number = document.createElement("span");
      number.className = "count";
      number.textContent = count.toLocaleString();
      button.append(name, number);
      button.setAttribute("aria-label", `${group.title} ${shown(value)}: ${count} image${count === 1 ? "" : "s"}`);
      button.addEventListener("click", () => onToggle(group.path, value, group.title));
      item.append(button);
      list.append(item);
    }
    section.append(heading, list);
    return section;
  });
  if (!sections.length || groups.every((group) => !group.values.length)) {
    const empty = document.createElement("p");
    empty.className = "note";
    empty.textContent = "No metadata to count yet.";
    sections.push(empty);
  }
  nav.replaceChildren(...sections);
}
