package io.tickstream.engine;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import java.io.IOException;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashSet;
import java.util.Set;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.expressions.UserDefinedFunction;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;

/**
 * What Spark's JSON readers let through: a message that is not exactly one strict JSON value.
 *
 * <p>The full path of parsing reads a message with {@code from_json}, which takes the
 * <em>last</em> of a repeated key, ignores text after the first value and reads single quotes as
 * double ones; {@code parse_json} refuses a repeated key and single quotes but also ignores
 * trailing text, and says none of it (a null). A market-data pipeline should not guess what a
 * damaged message meant, so the full path asks this first, for the messages the fast path
 * ({@link TickParser}, strict by construction) leaves to it. It reads the message once with
 * Jackson (the parser Spark's readers use) and returns its reject reason:
 *
 * <ul>
 *   <li>{@code duplicate_key}: a key repeated in one object;
 *   <li>{@code trailing_text}: anything but white space after the first value;
 *   <li>{@code single_quotes}: JSON with single-quoted strings or keys;
 *   <li>null: one strict JSON value, or text that is not JSON even with single quotes (the
 *       full path's own checks name that one, {@code malformed_json}).
 * </ul>
 */
public final class JsonShape implements UDF1<byte[], String> {
  private static final long serialVersionUID = 1L;
  private static final JsonFactory STRICT = new JsonFactory();
  private static final JsonFactory SINGLE_QUOTES =
      JsonFactory.builder().enable(JsonReadFeature.ALLOW_SINGLE_QUOTES).build();

  /** How one of the two readers reads a message. */
  enum Read {
    WELL_FORMED(null),
    MALFORMED(null),
    DUPLICATE_KEY("duplicate_key"),
    TRAILING_TEXT("trailing_text");

    final String reason;

    Read(String reason) {
      this.reason = reason;
    }
  }

  /** The check as a column: a reject reason, or null. */
  public static Column column(Column value) {
    UserDefinedFunction udf =
        functions.udf(new JsonShape(), DataTypes.StringType).withName("tickstream_json_shape");
    return udf.apply(value);
  }

  @Override
  public String call(byte[] value) {
    if (value == null || value.length == 0) return null;
    Read strict = read(STRICT, value);
    if (strict != Read.MALFORMED) return strict.reason;
    return read(SINGLE_QUOTES, value) == Read.MALFORMED ? null : "single_quotes";
  }

  /** How {@code json} reads the value. */
  static Read read(JsonFactory json, byte[] value) {
    boolean repeated = false;
    try (JsonParser p = json.createParser(value)) {
      Deque<Set<String>> keys = new ArrayDeque<>();
      int depth = 0;
      do {
        JsonToken token = p.nextToken();
        if (token == null) return Read.MALFORMED; // nothing, or an unfinished value
        switch (token) {
          case START_OBJECT -> {
            keys.push(new HashSet<>());
            depth++;
          }
          case START_ARRAY -> depth++;
          case END_OBJECT -> {
            keys.pop();
            depth--;
          }
          case END_ARRAY -> depth--;
          case FIELD_NAME -> repeated |= !keys.peek().add(p.currentName());
          default -> {}
        }
      } while (depth > 0);
      try {
        if (p.nextToken() != null) return Read.TRAILING_TEXT;
      } catch (IOException e) {
        return Read.TRAILING_TEXT; // text that is not even a JSON token
      }
    } catch (IOException | RuntimeException e) {
      return Read.MALFORMED;
    }
    return repeated ? Read.DUPLICATE_KEY : Read.WELL_FORMED;
  }
}
