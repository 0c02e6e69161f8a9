// How numbers from the API read to a person.

const UNITS = ["B", "KB", "MB", "GB"];

export function bytes(count) {
  let value = count;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

export function dimensions(item) {
  return `${item.width} × ${item.height}`;
}

export function dateTime(text) {
  return new Date(text).toLocaleString();
}
