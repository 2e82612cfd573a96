// Formatting of money (integer minor units + ISO 4217 currency), ratios and dates.
//
// The API never sends floats for money: amounts are integer minor units and the
// currency's exponent says where the decimal point goes (2 for USD, 0 for JPY, 3 for
// KWD). The exponents come from the server's own table (currency-exponents.js is
// generated from it), so the browser and the server agree on every currency.

import { DEFAULT_EXPONENT, NON_DEFAULT_EXPONENTS } from "./currency-exponents.js";

export const LOCALE = navigator.language || "en-US";
const moneyFormats = new Map();

/** Digits after the decimal point in `currency`'s minor unit. */
export function exponent(currency) {
  return NON_DEFAULT_EXPONENTS[currency] ?? DEFAULT_EXPONENT;
}

function moneyFormat(currency) {
  let format = moneyFormats.get(currency);
  if (!format) {
    const digits = exponent(currency);
    format = new Intl.NumberFormat(LOCALE, {
      style: "currency",
      currency,
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
    moneyFormats.set(currency, format);
  }
  return format;
}

/**
 * `minor` units of `currency` as a localised amount. The integer is split at the
 * exponent as a decimal string, never divided as a float, so large amounts stay exact.
 */
export function money(minor, currency) {
  const digits = exponent(currency);
  const negative = minor < 0;
  const text = String(Math.abs(Math.trunc(minor))).padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits) || "0";
  const fraction = digits ? text.slice(text.length - digits) : "";
  const decimal = `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
  // Intl accepts decimal strings exactly (ES2023); older engines fall back to Number.
  return moneyFormat(currency).format(decimal);
}

const integerFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const ratioFormat = new Intl.NumberFormat(LOCALE, {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

/** A count. */
export function count(value) {
  return integerFormat.format(value);
}

/** ROAS (net revenue / spend) as "2.35×"; "—" when there was no spend (null). */
export function roas(value) {
  if (value === null || value === undefined || value === "") return "—";
  return `${ratioFormat.format(Number(value))}×`;
}

const dateFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeZone: "UTC" });
const dateTimeFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" });

/** A calendar day "YYYY-MM-DD" (the seller's day, no time zone shift). */
export function day(isoDay) {
  return dateFormat.format(new Date(`${isoDay}T00:00:00Z`));
}

/** A moment, in the browser's time zone; "—" when absent. */
export function moment(iso) {
  return iso ? dateTimeFormat.format(new Date(iso)) : "—";
}

/** A duration in seconds as "4 min", "2 h 5 min", "3 d 1 h"; "—" when absent. */
export function lag(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** Today's date "YYYY-MM-DD" in the IANA time zone `zone` (the seller's days). */
export function todayIn(zone) {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(new Date());
  } catch {
    return new Date().toISOString().slice(0, 10);
  }
}

/** `isoDay` moved by `days` (may be negative). */
export function addDays(isoDay, days) {
  const date = new Date(`${isoDay}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}
