// The gallery: what is shown (filter, facet chips, view, sort; kept in the address so a link or
// a reload shows the same), a page of thumbnails at a time by cursor, and live events.

import { ApiError, graphql, setToken, subscribe } from "./api.js";
import { LoginError, currentToken, logOut, login, startLogin, userOf } from "./auth.js";
import { Detail } from "./detail.js";
import { ask } from "./dialogs.js";
import { loadFacets, renderFacets, shown } from "./facets.js";
import { FilterSyntaxError, combine, parseFilter } from "./filter.js";
import { Grid } from "./grid.js";
import { Snapshots } from "./snapshots.js";
import { Uploader } from "./upload.js";

const TILE = `fragment Tile on Image { id file time data revision contentType width height checksum url thumbnailUrl(width: 256) }`;
const PAGE = `query Page($filter: ImageFilter, $sort: [SortInput!], $view: String, $first: Int!, $after: String, $count: Boolean!) {
  imagesConnection(filter: $filter, sort: $sort, view: $view, first: $first, after: $after) {
    totalCount @include(if: $count)
    edges { node { ...Tile } }
    pageInfo { hasNextPage endCursor }
  }
}\n${TILE}`;
const EVENTS = `subscription Live($filter: ImageFilter, $view: String) {
  imageEvents(filter: $filter, view: $view) { kind image { ...Tile } }
}\n${TILE}`;
const VIEWS = `query Views { views { name filter problem } }`;
const SAVE_VIEW = `mutation SaveView($name: String!, $filter: ImageFilter, $sort: [SortInput!]) { saveView(name: $name, filter: $filter, sort: $sort) { name } }`;
const SET_KEY = `mutation SetKey($filter: ImageFilter!, $set: JSON!) { updateImages(filter: $filter, set: $set) { matchedCount modifiedCount } }`;
const DELETE_MANY = `mutation DeleteMany($filter: ImageFilter!) { deleteImages(filter: $filter) { deletedCount } }`;

const SORTS = {
  "time-desc": [{ field: "time", direction: "DESC" }],
  "time-asc": [{ field: "time", direction: "ASC" }],
  "file-asc": [{ field: "file", direction: "ASC" }],
  "file-desc": [{ field: "file", direction: "DESC" }],
  "id-asc": null, // the connection's own order, by id: the order images were stored in
};

const $ = (id) => document.getElementById(id);

// The login first (when configured): coming back from the issuer puts the gallery's own
// address back, which is read below.
let token = null;
let loginProblem = null;
try {
  token = await currentToken();
} catch (error) {
  loginProblem = error instanceof LoginError ? error : new LoginError(`Login failed: ${error.message}`);
}
setToken(token);

const address = new URLSearchParams(location.search);

const state = {
  text: address.get("q") ?? "",
  where: null,
  chips: address.getAll("facet").flatMap(readChip),
  view: address.get("view") ?? "",
  views: [],
  sort: address.get("sort") in SORTS ? address.get("sort") : "time-desc",
  // Thumbnails per page; the address may ask for fewer (tests, slow links).
  pageSize: Math.min(200, Math.max(1, Number(address.get("pageSize")) || 60)),
  cursor: null,
  hasNext: false,
  total: null,
  loading: false,
  generation: 0,
  live: "connecting",
};

function readChip(text) {
  try {
    const [path, value, title] = JSON.parse(text);
    return typeof path === "string" ? [{ path, value, title: title ?? path }] : [];
  } catch {
    return [];
  }
}

// ---- what is shown

function currentFilter() {
  return combine([state.where, ...state.chips.map((chip) => ({ [chip.path]: chip.value }))]);
}

function variables() {
  return { filter: currentFilter(), view: state.view || null };
}

function remember() {
  const next = new URLSearchParams();
  if (state.text) next.set("q", state.text);
  for (const chip of state.chips) next.append("facet", JSON.stringify([chip.path, chip.value, chip.title]));
  if (state.view) next.set("view", state.view);
  if (state.sort !== "time-desc") next.set("sort", state.sort);
  if (address.has("pageSize")) next.set("pageSize", String(state.pageSize));
  const search = next.toString();
  history.replaceState(null, "", search ? `?${search}` : location.pathname);
}

function refresh() {
  remember();
  renderChips();
  load(true);
  facets();
  listen();
}

// ---- messages

function showError(error, prefix = "") {
  const box = $("error");
  const refused = error instanceof ApiError && error.has("UNAUTHENTICATED");
  let why = "";
  if (refused && !login) why = "This service needs a login, which the gallery is not set up for (OIDC_CLIENT_ID). ";
  else if (refused) why = token ? "Your login has expired or was refused. " : "This service needs a login. ";
  box.textContent = `${prefix}${why}${error.message}`;
  if ((refused && login) || error instanceof LoginError) box.append(" ", loginButton(token ? "Log in again" : "Log in"));
  box.hidden = false;
}

function loginButton(text) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "primary";
  button.textContent = text;
  button.addEventListener("click", () => {
    button.disabled = true;
    startLogin().catch((error) => {
      button.disabled = false;
      showError(new LoginError(`The login cannot start: ${error.message}`));
    });
  });
  return button;
}

// Who is logged in and "Log out", or "Log in"; nothing without a configured login.
function renderAccount() {
  const account = $("account");
  if (!login) return;
  account.hidden = false;
  if (!token) {
    account.replaceChildren(loginButton("Log in"));
    return;
  }
  const who = document.createElement("span");
  who.textContent = userOf(token);
  const out = document.createElement("button");
  out.type = "button";
  out.textContent = "Log out";
  out.addEventListener("click", () => {
    logOut();
    location.reload();
  });
  account.replaceChildren(who, " ", out);
}

function hideError() {
  $("error").hidden = true;
}

function setStatus() {
  const shownCount = grid.size;
  let text;
  if (state.total === null) text = state.loading ? "Loading…" : "";
  else if (state.total === 0) text = currentFilter() || state.view ? "No images match." : "No images yet: drop some here to upload them.";
  else text = `${shownCount.toLocaleString()} of ${state.total.toLocaleString()} image${state.total === 1 ? "" : "s"}${state.loading ? ", loading more…" : ""}`;
  $("status").textContent = text;
}

function setLive(live) {
  state.live = live;
  const badge = $("live");
  badge.dataset.state = live;
  badge.textContent = { live: "Live", offline: "Reconnecting…", unavailable: "Not live", connecting: "Connecting…" }[live];
}

// ---- pages of thumbnails

async function load(reset) {
  if (reset) {
    state.generation++;
    state.cursor = null;
    state.hasNext = false;
    state.total = null;
    state.loading = false;
    grid.clear();
  }
  if (state.loading || (!reset && !state.hasNext)) return;
  const generation = state.generation;
  state.loading = true;
  setStatus();
  try {
    const { imagesConnection: page } = await graphql(PAGE, {
      ...variables(),
      sort: SORTS[state.sort],
      first: state.pageSize,
      after: state.cursor,
      // Counting reads every match: once per filter, then kept up to date by the events.
      count: reset,
    });
    if (generation !== state.generation) return;
    if (reset) state.total = page.totalCount;
    grid.append(page.edges.map((edge) => edge.node));
    state.cursor = page.pageInfo.endCursor;
    state.hasNext = page.pageInfo.hasNextPage;
    hideError();
  } catch (error) {
    if (generation === state.generation) showError(error);
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      setStatus();
      requestAnimationFrame(moreIfVisible);
    }
  }
}

// The observer fires when the end of the grid comes near; a page that leaves it in sight
// (a tall screen, a short page) fires nothing more, so look again after each page.
function moreIfVisible() {
  const main = $("main");
  const end = $("sentinel").getBoundingClientRect();
  const box = main.getBoundingClientRect();
  if (state.hasNext && !state.loading && end.top < box.bottom + 600) load(false);
}

// ---- live events

let stopListening = () => {};

function listen() {
  stopListening();
  stopListening = subscribe(EVENTS, variables(), {
    next: ({ imageEvents: event }) => happened(event.kind, event.image),
    error: (error) => showError(error, "Live updates: "),
    onState: setLive,
  });
}

function happened(kind, image) {
  if (kind === "DELETED") {
    if (grid.has(image.id)) {
      grid.remove(image.id);
      if (state.total) state.total--;
    }
  } else if (grid.has(image.id)) {
    grid.update(image);
  } else if (kind === "CREATED") {
    // Where the sort puts it, if that is among what is shown; counted either way.
    if (state.sort === "time-desc") grid.prepend(image);
    else if (!state.hasNext) grid.append([image]);
    if (state.total !== null) state.total++;
  } else if (!state.hasNext) {
    // Changed into a match. (With pages still to come it may as well be one of those, already
    // counted: it shows when its page comes.)
    grid.append([image]);
    if (state.total !== null) state.total++;
  }
  detail.changed(kind, image);
  setStatus();
  facetsSoon();
}

// ---- facets and chips

let facetTimer = 0;
let facetGeneration = 0;

// At most one count a second however fast events come (a bulk change sends one per image),
// and never put off for good by a steady stream of them.
function facetsSoon() {
  if (facetTimer) return;
  facetTimer = setTimeout(() => {
    facetTimer = 0;
    facets();
  }, 1000);
}

async function facets() {
  const generation = ++facetGeneration;
  const nav = $("facets");
  nav.setAttribute("aria-busy", "true");
  try {
    const groups = await loadFacets(variables());
    if (generation !== facetGeneration) return;
    renderFacets(nav, groups, isChosen, toggleChip);
  } catch (error) {
    if (generation !== facetGeneration) return;
    const problem = document.createElement("p");
    problem.className = "note problem";
    problem.textContent = `Facets: ${error.message}`;
    nav.replaceChildren(problem);
  } finally {
    nav.removeAttribute("aria-busy");
  }
}

function isChosen(path, value) {
  return state.chips.some((chip) => chip.path === path && chip.value === value);
}

function toggleChip(path, value, title) {
  if (isChosen(path, value)) state.chips = state.chips.filter((chip) => !(chip.path === path && chip.value === value));
  else state.chips.push({ path, value, title });
  refresh();
}

function renderChips() {
  const holder = $("chips");
  holder.replaceChildren(
    ...state.chips.map((chip) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip";
      button.textContent = `${chip.title}: ${shown(chip.value)} ✕`;
      button.setAttribute("aria-label", `Remove the filter ${chip.title} ${shown(chip.value)}`);
      button.addEventListener("click", () => toggleChip(chip.path, chip.value, chip.title));
      return button;
    }),
  );
}

// ---- the filter bar, sort and views

function applyText(text) {
  try {
    state.where = parseFilter(text);
  } catch (error) {
    if (!(error instanceof FilterSyntaxError)) throw error;
    showError(error);
    $("filter-text").setAttribute("aria-invalid", "true");
    return false;
  }
  $("filter-text").removeAttribute("aria-invalid");
  state.text = text.trim();
  return true;
}

async function loadViews() {
  try {
    const { views } = await graphql(VIEWS);
    state.views = views;
    const select = $("view");
    select.replaceChildren(new Option("All images", ""));
    for (const view of views) {
      const option = new Option(view.problem ? `${view.name} (unusable)` : view.name, view.name);
      if (view.problem) option.title = view.problem;
      select.append(option);
    }
    if (state.view && !views.some((view) => view.name === state.view)) select.append(new Option(state.view, state.view));
    select.value = state.view;
  } catch (error) {
    showError(error, "Views: ");
  }
}

async function saveView() {
  const own = state.views.find((view) => view.name === state.view);
  // Saved as shown: the chosen view's filter too, so the new view needs nothing else.
  const parts = [own?.filter, state.where, ...state.chips.map((chip) => ({ [chip.path]: chip.value }))];
  const filter = combine(parts);
  const answer = await ask({
    title: "Save a view",
    text: "The filter, facets and sort shown now, under a name (the same name replaces that view).",
    fields: [{ name: "name", label: "Name", value: state.view, placeholder: "cats-reviewed" }],
    ok: "Save",
    act: ({ name }) => graphql(SAVE_VIEW, { name: name.trim(), filter, sort: SORTS[state.sort] }),
  });
  if (!answer) return;
  state.view = answer.name.trim();
  state.text = "";
  state.where = null;
  state.chips = [];
  $("filter-text").value = "";
  await loadViews();
  refresh();
}

// ---- bulk changes on the selection

function selectionChanged(selected) {
  $("bulk").hidden = selected.size === 0;
  $("bulk-count").textContent = `${selected.size} selected`;
}

async function bulkSet() {
  const ids = [...grid.selected];
  const answer = await ask({
    title: `Set a key on ${ids.length} image${ids.length === 1 ? "" : "s"}`,
    text: "The value is read as JSON when it is JSON (3, true, [\"a\"]), else as text.",
    fields: [
      { name: "key", label: "Key", placeholder: "reviewed" },
      { name: "value", label: "Value", placeholder: "true" },
    ],
    ok: "Set",
    act: ({ key, value }) => graphql(SET_KEY, { filter: { ids }, set: { [key.trim()]: jsonOrText(value) } }),
  });
  if (answer) grid.clearSelection();
}

async function bulkDelete() {
  const ids = [...grid.selected];
  let deleted = 0;
  const answer = await ask({
    title: `Delete ${ids.length} image${ids.length === 1 ? "" : "s"}?`,
    text: "They and their files will be deleted for everyone. This cannot be undone.",
    ok: "Delete",
    danger: true,
    act: async () => {
      deleted = (await graphql(DELETE_MANY, { filter: { ids } })).deleteImages.deletedCount;
    },
  });
  if (!answer) return;
  // Without live events the grid would not hear of it.
  for (const id of ids) happened("DELETED", { id });
  grid.clearSelection();
  $("status").textContent += ` (${deleted} deleted)`;
}

function jsonOrText(value) {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

// ---- wiring

const grid = new Grid($("grid"), {
  onOpen: (image) => detail.open(image),
  onSelection: selectionChanged,
  onNearEnd: () => load(false),
});
const detail = new Detail({
  grid,
  onChanged: (image) => grid.update(image),
  onDeleted: (id) => happened("DELETED", { id }),
});
const uploader = new Uploader({
  fragment: TILE,
  onUploaded: (image) => {
    // The live event shows it; without one (not connected) show it here.
    if (state.live !== "live") happened("CREATED", image);
  },
});
const snapshots = new Snapshots({ currentFilter: variables });

$("filter-text").value = state.text;
$("sort").value = state.sort;
if (!applyText(state.text)) state.text = "";

$("filter-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (applyText($("filter-text").value)) {
    hideError();
    refresh();
  }
});
$("sort").addEventListener("change", (event) => {
  state.sort = event.target.value;
  refresh();
});
$("view").addEventListener("change", (event) => {
  state.view = event.target.value;
  refresh();
});
$("save-view").addEventListener("click", saveView);
$("open-upload").addEventListener("click", () => uploader.open());
$("open-snapshots").addEventListener("click", () => snapshots.open());
$("bulk-set").addEventListener("click", bulkSet);
$("bulk-delete").addEventListener("click", bulkDelete);
$("bulk-clear").addEventListener("click", () => grid.clearSelection());
new IntersectionObserver((entries) => entries.some((entry) => entry.isIntersecting) && load(false), {
  root: $("main"),
  rootMargin: "0px 0px 600px 0px",
}).observe($("sentinel"));
// The sidebar folds away on a phone, where it would push the grid off the first screen.
if (matchMedia("(max-width: 720px)").matches) $("facets-box").open = false;

window.addEventListener("unhandledrejection", (event) => {
  if (event.reason instanceof ApiError || event.reason instanceof Error) showError(event.reason);
});

renderAccount();
if (loginProblem) showError(loginProblem);
if (login && !token) {
  // Nothing to ask the service for before a login: it would only refuse.
  setLive("unavailable");
  $("status").textContent = "Log in to see the images.";
} else {
  setLive("connecting");
  loadViews();
  refresh();
}
