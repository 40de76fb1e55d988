package io.tickstream.engine;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Set;
import java.util.regex.Pattern;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * The fast path of parsing: a message that is certainly a valid tick, read in one pass.
 *
 * <p>The bars job parses with Spark's {@code from_json} and a chain of validation checks
 * ({@code tickstream/bars/parse.py}), which name the reason of every reject. That costs ~9 µs a
 * message, most of the job's time. Nearly every message is a valid tick in compact JSON, so this
 * parser reads it once with Jackson (the parser {@code from_json} itself uses) and returns its
 * fields; for <em>anything</em> else (a heartbeat, a reject, an escape, a key it does not expect,
 * a number of another JSON type) it returns null and the message takes the full path. It only
 * accepts: a message it accepts gets the very fields, and the same verdict (a valid tick), that
 * the full path gives it. Every check below is the full path's, computed the same way.
 */
public final class TickParser implements UDF2<byte[], Long, Row> {
  private static final long serialVersionUID = 1L;
  private static final JsonFactory JSON = new JsonFactory();

  /** What a tick this parser accepts carries (the parsed columns of the full path). */
  public static final StructType FIELDS =
      new StructType()
          .add("event_id", DataTypes.StringType, false)
          .add("symbol", DataTypes.StringType, false)
          .add("seq", DataTypes.LongType, false)
          .add("ts_epoch_ms", DataTypes.LongType, false)
          .add("price", DataTypes.DoubleType, false)
          .add("volume", DataTypes.DoubleType, false)
          .add("source", DataTypes.StringType, false);

  private static final int TYPE = 1;
  private static final int VERSION = 1 << 1;
  private static final int EVENT_ID = 1 << 2;
  private static final int SYMBOL = 1 << 3;
  private static final int SEQ = 1 << 4;
  private static final int TS = 1 << 5;
  private static final int TS_MS = 1 << 6;
  private static final int PRICE = 1 << 7;
  private static final int VOLUME = 1 << 8;
  private static final int SOURCE = 1 << 9;
  private static final int ALL = (1 << 10) - 1;

  private final int schemaVersion;
  private final long minTsMs;
  private final long maxAheadMs;
  private final int maxMessageBytes;
  private final Pattern symbol;
  private final Set<String> sources;

  TickParser(
      int schemaVersion,
      long minTsMs,
      long maxAheadMs,
      int maxMessageBytes,
      String symbolPattern,
      String[] sources) {
    this.schemaVersion = schemaVersion;
    this.minTsMs = minTsMs;
    this.maxAheadMs = maxAheadMs;
    this.maxMessageBytes = maxMessageBytes;
    this.symbol = Pattern.compile(symbolPattern);
    this.sources = Set.of(sources);
  }

  /**
   * The fast path as a column: the tick's fields, or null where the full path must decide.
   *
   * @param value the Kafka message's value (binary)
   * @param kafkaMicros the Kafka timestamp in microseconds ({@code unix_micros(timestamp)})
   */
  public static Column column(
      int schemaVersion,
      long minTsMs,
      long maxAheadMs,
      int maxMessageBytes,
      String symbolPattern,
      String[] sources,
      Column value,
      Column kafkaMicros) {
    TickParser parser =
        new TickParser(
            schemaVersion, minTsMs, maxAheadMs, maxMessageBytes, symbolPattern, sources);
    UserDefinedFunction udf = functions.udf(parser, FIELDS).withName("tickstream_fast_tick");
    return udf.apply(value, kafkaMicros);
  }

  @Override
  public Row call(byte[] value, Long kafkaMicros) {
    if (value == null || kafkaMicros == null) return null;
    if (value.length == 0 || value.length > maxMessageBytes) return null;
    for (byte b : value) {
      // ASCII without escapes: the text is the bytes (UTF-8 valid, lengths in characters).
      if (b < 0 || b == '\\') return null;
    }
    try (JsonParser p = JSON.createParser(value)) {
      return read(p, kafkaMicros);
    } catch (IOException | RuntimeException e) {
      return null; // the full path names what is wrong
    }
  }

  private Row read(JsonParser p, long kafkaMicros) throws IOException {
    if (p.nextToken() != JsonToken.START_OBJECT) return null;
    int seen = 0;
    String type = null;
    String eventId = null;
    String sym = null;
    String ts = null;
    String source = null;
    long seq = 0;
    long tsMs = 0;
    double price = 0;
    double volume = 0;
    int version = -1;
    JsonToken token;
    while ((token = p.nextToken()) == JsonToken.FIELD_NAME) {
      String name = p.currentName();
      JsonToken v = p.nextToken();
      int bit;
      switch (name) {
        case "type" -> {
          bit = TYPE;
          type = text(p, v);
        }
        case "schema_version" -> {
          bit = VERSION;
          if (v != JsonToken.VALUE_NUMBER_INT
              || p.getNumberType() != JsonParser.NumberType.INT) return null;
          version = p.getIntValue();
        }
        case "event_id" -> {
          bit = EVENT_ID;
          eventId = text(p, v);
        }
        case "symbol" -> {
          bit = SYMBOL;
          sym = text(p, v);
        }
        case "ts" -> {
          bit = TS;
          ts = text(p, v);
        }
        case "source" -> {
          bit = SOURCE;
          source = text(p, v);
        }
        case "seq" -> {
          bit = SEQ;
          if (!isLong(p, v)) return null;
          seq = p.getLongValue();
        }
        case "ts_epoch_ms" -> {
          bit = TS_MS;
          if (!isLong(p, v)) return null;
          tsMs = p.getLongValue();
        }
        case "price" -> {
          bit = PRICE;
          if (!isNumber(v)) return null;
          price = p.getDoubleValue();
        }
        case "volume" -> {
          bit = VOLUME;
          if (!isNumber(v)) return null;
          volume = p.getDoubleValue();
        }
        default -> {
          return null;
        }
      }
      if ((seen & bit) != 0) return null; // a repeated key: the full path decides
      seen |= bit;
    }
    if (token != JsonToken.END_OBJECT || p.nextToken() != null || seen != ALL) return null;
    // a text field given another JSON type: the full path names it (bad_type, bad_symbol...)
    if (type == null || eventId == null || sym == null || ts == null || source == null) return null;
    boolean valid =
        version == schemaVersion
            && "tick".equals(type)
            && symbol.matcher(sym).find()
            && !eventId.isEmpty()
            && eventId.length() <= 128
            && Double.isFinite(price)
            && price > 0
            && Double.isFinite(volume)
            && volume >= 0
            && seq >= 0
            && sources.contains(source)
            && tsMs >= minTsMs
            // as the full path computes it: timestamp as double seconds, times 1000, plus the limit
            && !((double) tsMs > (kafkaMicros / 1000000.0) * 1000 + (double) maxAheadMs)
            && ts.equals(iso(tsMs));
    if (!valid) return null;
    return RowFactory.create(eventId, sym, seq, tsMs, price, volume, source);
  }

  /** The text of a JSON string, or null for any other JSON type. */
  private static String text(JsonParser p, JsonToken v) throws IOException {
    return v == JsonToken.VALUE_STRING ? p.getText() : null;
  }

  private static boolean isLong(JsonParser p, JsonToken v) throws IOException {
    if (v != JsonToken.VALUE_NUMBER_INT) return false;
    JsonParser.NumberType type = p.getNumberType();
    return type == JsonParser.NumberType.INT || type == JsonParser.NumberType.LONG;
  }

  private static boolean isNumber(JsonToken v) {
    return v == JsonToken.VALUE_NUMBER_INT || v == JsonToken.VALUE_NUMBER_FLOAT;
  }

  /** {@code yyyy-MM-dd'T'HH:mm:ss.SSS'Z'} in UTC, or null outside years 1000-9999. */
  static String iso(long epochMs) {
    LocalDateTime t =
        LocalDateTime.ofEpochSecond(
            Math.floorDiv(epochMs, 1000), Math.floorMod(epochMs, 1000) * 1_000_000,
            ZoneOffset.UTC);
    int year = t.getYear();
    if (year < 1000 || year > 9999) return null;
    char[] s = new char[24];
    put(s, 0, year, 4);
    s[4] = '-';
    put(s, 5, t.getMonthValue(), 2);
    s[7] = '-';
    put(s, 8, t.getDayOfMonth(), 2);
    s[10] = 'T';
    put(s, 11, t.getHour(), 2);
    s[13] = ':';
    put(s, 14, t.getMinute(), 2);
    s[16] = ':';
    put(s, 17, t.getSecond(), 2);
    s[19] = '.';
    put(s, 20, Math.floorMod(epochMs, 1000), 3);
    s[23] = 'Z';
    return new String(s);
  }

  private static void put(char[] s, int at, int value, int digits) {
    for (int i = at + digits - 1; i >= at; i--) {
      s[i] = (char) ('0' + value % 10);
      value /= 10;
    }
  }
}
