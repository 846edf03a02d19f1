/**
 * Helpers for tests that expect a failure: the rejection of a promise, checked for its class, and the
 * issues of a `ConfigError`.
 */
import { ConfigError } from '../../src/errors.js';

/** The rejection of `p`, whatever it is (fails the test if `p` resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/**
 * The rejection of `p`, checked to be an instance of `type` (fails the test if `p` resolves or rejects with
 * anything else).
 */
export async function rejectionOf<E extends Error>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(type);
  return err as E;
}

/** The issues of the `ConfigError` that `fn` throws (fails the test if it throws nothing or something else). */
export function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}
