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
  // Intl accepts decimal strings exactly (ES2023); older engines fall back to Number.
  return moneyFormat(currency).format(decimalOf(minor, currency));
}

/**
 * `minor` units of `currency` as a plain decimal string ("12.50", "1250" for JPY), split
 * at the exponent as text: what an amount field is prefilled with.
 */
export function decimalOf(minor, currency) {
  const digits = exponent(currency);
  const negative = minor < 0;
  const text = String(Math.abs(Math.trunc(minor))).padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits) || "0";
  const fraction = digits ? text.slice(text.length - digits) : "";
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/**
 * An amount typed in major units ("12.5", "12,50", "1250") as integer minor units of
 * `currency`, or `{error}` saying what is wrong. The digits are joined as text, never
 * multiplied as a float (19.99 * 100 is 1998.9999999999998), so the amount sent is the
 * amount typed. No grouping separators: "1,250" would be ambiguous across locales.
 */
export function parseAmount(text, currency) {
  const digits = exponent(currency);
  const value = String(text).trim().replace(/\s+/g, "");
  const match = /^(\d+)(?:[.,](\d*))?$/.exec(value);
  if (!match) {
    const example = digits ? `12${"." + "5".padEnd(digits, "0")}` : "1250";
    return { error: `Enter the amount as a number, like ${example}.` };
  }
  const fraction = match[2] ?? "";
  if (fraction.length > digits) {
    return {
      error: digits
        ? `${currency} amounts have at most ${digits} digit${digits === 1 ? "" : "s"} after the decimal point.`
        : `${currency} amounts have no decimals.`,
    };
  }
  const minorText = `${match[1]}${fraction.padEnd(digits, "0")}`.replace(/^0+(?=\d)/, "");
  const minor = Number(minorText);
  if (!Number.isSafeInteger(minor)) return { error: "That amount is too large." };
  if (minor <= 0) return { error: "Enter an amount greater than zero." };
  return { minor };
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
