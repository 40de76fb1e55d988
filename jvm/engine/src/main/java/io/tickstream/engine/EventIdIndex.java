package io.tickstream.engine;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import scala.jdk.javaapi.CollectionConverters;

/**
 * The keyed dedup index of the bars job: event_id to the content of its first copy, in Spark's
 * state store (RocksDB, changelog checkpoints), so that the work per micro-batch grows with the
 * batch and not with the ticks of the open windows.
 *
 * <p>Rows are grouped by the {@code dedup_key} column: a tick's event_id, or the empty string for
 * every other message (rejects and heartbeats), which passes through untouched. Each output row is
 * the input row plus {@code copy}: {@code accepted} for the first copy of an event_id (the one
 * already in the index, or the first by Kafka partition then offset), {@code duplicate} for
 * another copy with the same {@code content} hash, {@code conflict} for another copy with other
 * content, and null for the rows that pass through.
 *
 * <p>An entry lives until Spark's event-time watermark passes the end of its tick's window (an
 * event-time timer at {@code window_end_ms}). The job keeps Spark's watermark at or behind its own
 * (one watermark per Kafka partition, the minimum of them), so an entry is never dropped while a
 * copy of its tick could still count: by then the window is closed and a copy is late.
 */
public final class EventIdIndex extends StatefulProcessor<String, Row, Row> {
  private static final long serialVersionUID = 1L;

  public static final String KEY = "dedup_key";
  public static final String COPY = "copy";

  private final int contentIndex;
  private final int windowEndIndex;
  private final int partitionIndex;
  private final int offsetIndex;
  private final int width;
  private transient ValueState<Long> first;

  private EventIdIndex(StructType schema) {
    this.contentIndex = schema.fieldIndex("content");
    this.windowEndIndex = schema.fieldIndex("window_end_ms");
    this.partitionIndex = schema.fieldIndex("kafka_partition");
    this.offsetIndex = schema.fieldIndex("kafka_offset");
    this.width = schema.size();
  }

  /** The rows of {@code input}, each with its {@code copy} class (see the class comment). */
  public static Dataset<Row> classify(Dataset<Row> input) {
    StructType schema = input.schema();
    StructType output = schema.add(COPY, DataTypes.StringType, true);
    int keyIndex = schema.fieldIndex(KEY);
    return input
        .groupByKey((MapFunction<Row, String>) row -> row.getString(keyIndex), Encoders.STRING())
        .transformWithState(
            new EventIdIndex(schema),
            TimeMode.EventTime(),
            OutputMode.Append(),
            Encoders.row(output));
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    first = getHandle().getValueState("content", Encoders.LONG(), TTLConfig.NONE());
  }

  @Override
  public scala.collection.Iterator<Row> handleInputRows(
      String key, scala.collection.Iterator<Row> rows, TimerValues timerValues) {
    List<Row> copies = new ArrayList<>();
    rows.foreach(copies::add);
    List<Row> out = new ArrayList<>(copies.size());
    if (key.isEmpty()) {
      for (Row row : copies) {
        out.add(withCopy(row, null));
      }
      return CollectionConverters.asScala(out.iterator());
    }
    if (copies.size() > 1) {
      copies.sort(
          Comparator.comparingInt((Row r) -> r.getInt(partitionIndex))
              .thenComparingLong(r -> r.getLong(offsetIndex)));
    }
    Long known = first.exists() ? first.get() : null;
    for (Row row : copies) {
      long content = row.getLong(contentIndex);
      String copy;
      if (known == null) {
        known = content;
        first.update(content);
        getHandle().registerTimer(row.getLong(windowEndIndex));
        copy = "accepted";
      } else {
        copy = known == content ? "duplicate" : "conflict";
      }
      out.add(withCopy(row, copy));
    }
    return CollectionConverters.asScala(out.iterator());
  }

  @Override
  public scala.collection.Iterator<Row> handleExpiredTimer(
      String key, TimerValues timerValues, ExpiredTimerInfo expiredTimerInfo) {
    first.clear();
    return CollectionConverters.asScala(java.util.Collections.<Row>emptyIterator());
  }

  private Row withCopy(Row row, String copy) {
    Object[] values = new Object[width + 1];
    for (int i = 0; i < width; i++) {
      values[i] = row.get(i);
    }
    values[width] = copy;
    return RowFactory.create(values);
  }
}
