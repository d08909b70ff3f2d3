// What the filter bar takes, turned into the `where` of an ImageFilter: the legacy service's
// `key=value` query form (label=cat&camera=phone), read as REST reads it, or a MongoDB-style
// JSON query, which the service checks against its operator whitelist.

export class FilterSyntaxError extends Error {}

// REST parameters that page or sort rather than filter; file, from, to and ids filter as in
// REST, and any other key is a metadata key.
const PAGING_KEYS = new Set(["skip", "limit", "sort", "order", "select", "after", "view", "counts", "regex"]);
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

export function parseFilter(text) {
  const source = text.trim();
  if (!source) return null;
  if (source.startsWith("{")) return parseJson(source);
  if (source.startsWith("[") || source.startsWith('"')) {
    throw new FilterSyntaxError('A JSON filter is an object, such as {"data.label": "cat"}.');
  }
  return parsePairs(source);
}

function parseJson(source) {
  let value;
  try {
    value = JSON.parse(source);
  } catch (error) {
    throw new FilterSyntaxError(`The filter is not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FilterSyntaxError('A JSON filter is an object, such as {"data.label": "cat"}.');
  }
  return Object.keys(value).length ? value : null;
}

function parsePairs(source) {
  const values = new Map();
  for (const part of source.split("&")) {
    const pair = part.trim();
    if (!pair) continue;
    const at = pair.indexOf("=");
    if (at <= 0) {
      throw new FilterSyntaxError(`"${pair}" is not key=value: write label=cat, or a JSON filter such as {"data.label": "cat"}.`);
    }
    const key = pair.slice(0, at).trim();
    if (PAGING_KEYS.has(key)) {
      throw new FilterSyntaxError(`"${key}" is a paging or sorting parameter, not a filter: the sort and view menus do that here.`);
    }
    if (!values.has(key)) values.set(key, []);
    values.get(key).push(pair.slice(at + 1).trim());
  }
  const where = {};
  for (const [key, list] of values) {
    if (key === "from" || key === "to") {
      where.time = { ...where.time, [key === "from" ? "$gte" : "$lte"]: list[list.length - 1] };
    } else if (key === "ids") {
      const ids = list.flatMap((value) => value.split(",")).map((id) => id.trim()).filter(Boolean);
      where._id = { $in: ids }; // the service reads strings compared with _id as ids
    } else if (key === "file") {
      where.file = list.length === 1 ? list[0] : { $in: list };
    } else {
      // As REST reads it: a value also matches the number or boolean it spells, and a key
      // given twice matches either value.
      const spelled = list.flatMap(spellings);
      where[`data.${key}`] = spelled.length === 1 ? spelled[0] : { $in: spelled };
    }
  }
  return Object.keys(where).length ? where : null;
}

function spellings(value) {
  const found = [value];
  if (NUMBER.test(value) && Number.isFinite(Number(value))) found.push(Number(value));
  if (value === "true") found.push(true);
  if (value === "false") found.push(false);
  return found;
}

// The bar's filter, the facet chips and nothing else, as one ImageFilter (null: everything).
export function combine(parts) {
  const present = parts.filter(Boolean);
  if (!present.length) return null;
  return { where: present.length === 1 ? present[0] : { $and: present } };
}
