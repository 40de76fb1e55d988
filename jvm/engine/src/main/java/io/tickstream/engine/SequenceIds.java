package io.tickstream.engine;

import java.nio.ByteBuffer;

import org.apache.spark.unsafe.types.UTF8String;

/**
 * The event_ids tickstream's own producer writes, {@code <producer>-<n>}: 16 lowercase hex
 * digits naming the producer's stream of one symbol, a dash, and the tick's sequence number in
 * canonical decimal (no sign, no leading zero, at most 18 digits). Exactly those strings map
 * one to one onto a pair of longs (producer, n), so the dedup index can keep them as numbers
 * in chunks of {@link #SLOTS} consecutive n: one state store entry per chunk instead of one per
 * tick. Any other event_id (another producer's, a yfinance quote's, or one that only looks
 * similar, such as {@code ...-017}) is not of this form and is indexed whole, as before.
 *
 * <p>A chunk's value is the mask of the n present, then the content hash of each present n in
 * the order of n: at most 8 + 8 x 64 bytes.
 */
final class SequenceIds {
  static final int SHIFT = 6;
  static final int SLOTS = 1 << SHIFT;
  private static final int PRODUCER_DIGITS = 16;
  private static final int MAX_N_DIGITS = 18;

  private SequenceIds() {}

  /**
   * Reads {@code id} into {@code out} (producer, n); false when it is not of the form, and
   * then {@code out} is left undefined.
   */
  static boolean parse(UTF8String id, long[] out) {
    int length = id.numBytes();
    int digits = length - PRODUCER_DIGITS - 1;
    if (digits < 1 || digits > MAX_N_DIGITS || id.getByte(PRODUCER_DIGITS) != '-') {
      return false;
    }
    long producer = 0;
    for (int i = 0; i < PRODUCER_DIGITS; i++) {
      byte b = id.getByte(i);
      int v;
      if (b >= '0' && b <= '9') {
        v = b - '0';
      } else if (b >= 'a' && b <= 'f') {
        v = b - 'a' + 10;
      } else {
        return false;
      }
      producer = (producer << 4) | v;
    }
    if (digits > 1 && id.getByte(PRODUCER_DIGITS + 1) == '0') {
      return false; // a leading zero: another string than the canonical one
    }
    long n = 0;
    for (int i = PRODUCER_DIGITS + 1; i < length; i++) {
      byte b = id.getByte(i);
      if (b < '0' || b > '9') {
        return false;
      }
      n = n * 10 + (b - '0');
    }
    out[0] = producer;
    out[1] = n;
    return true;
  }

  /** A chunk's stored value: the mask of present slots, then their hashes by slot. */
  static byte[] encode(long present, long[] hashes) {
    ByteBuffer out = ByteBuffer.allocate(8 + 8 * Long.bitCount(present));
    out.putLong(present);
    for (long rest = present; rest != 0; rest &= rest - 1) {
      out.putLong(hashes[Long.numberOfTrailingZeros(rest)]);
    }
    return out.array();
  }

  /** Fills {@code hashes} (by slot) from a stored value; returns the mask of present slots. */
  static long decode(byte[] value, long[] hashes) {
    ByteBuffer in = ByteBuffer.wrap(value);
    long present = in.getLong();
    for (long rest = present; rest != 0; rest &= rest - 1) {
      hashes[Long.numberOfTrailingZeros(rest)] = in.getLong();
    }
    return present;
  }
}
