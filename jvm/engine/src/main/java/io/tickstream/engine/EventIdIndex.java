package io.tickstream.engine;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.streaming.ExpiredTimerInfo;
import org.apache.spark.sql.streaming.MapState;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;

/**
 * The keyed dedup index of the bars job: event_id to the content of its first copy, in Spark's
 * state store (RocksDB, changelog checkpoints), so that the work per micro-batch grows with the
 * batch and not with the ticks of the open windows.
 *
 * <p>Rows are grouped by the {@code dedup_bucket} column: a hash of a tick's event_id into a fixed
 * number of buckets, or -1 for every other message (rejects and heartbeats), which passes through
 * untouched. A bucket's state is a map event_id to (content hash, end of the tick's window). Each
 * output row is the input row plus {@code copy}: {@code accepted} for the first copy of an
 * event_id (the one already in the index, or the first by Kafka partition then offset),
 * {@code duplicate} for another copy with the same {@code content} hash, {@code conflict} for
 * another copy with other content, and null for the rows that pass through.
 *
 * <p>Buckets, not event_ids, are the keys: Spark's per-key machinery (a call, a timer) then runs
 * a few thousand times a batch instead of once a tick, and a tick costs one lookup and one write.
 * An entry lives until Spark's event-time watermark passes the end of its tick's window: each
 * bucket has one event-time timer, at its earliest window end; when it fires the bucket is swept
 * once (everything behind the watermark goes) and the timer moves to the earliest end left. A
 * replay whose batch spans a thousand windows still sets one timer a bucket. The job keeps
 * Spark's watermark at or behind its own (one watermark per Kafka partition, the minimum of
 * them), so an entry is never dropped while a copy of its tick could still count: by then the
 * window is closed and a copy is late.
 */
public final class EventIdIndex extends StatefulProcessor<Integer, Row, Row> {
  private static final long serialVersionUID = 2L;

  public static final String KEY = "dedup_bucket";
  public static final String COPY = "copy";

  private final int eventIdIndex;
  private final int contentIndex;
  private final int windowEndIndex;
  private final int partitionIndex;
  private final int offsetIndex;
  private final int width;
  private transient MapState<String, Tuple2<Long, Long>> seen;
  // Buckets swept in this task: a bucket can have more than one timer due in a batch (a new
  // earlier one registered beside the one in place); the first sweep removes everything behind
  // the watermark, the others have nothing to do.
  private transient Set<Integer> swept;

  private EventIdIndex(StructType schema) {
    this.eventIdIndex = schema.fieldIndex("event_id");
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
        .groupByKey((MapFunction<Row, Integer>) row -> row.getInt(keyIndex), Encoders.INT())
        .transformWithState(
            new EventIdIndex(schema),
            TimeMode.EventTime(),
            OutputMode.Append(),
            Encoders.row(output));
  }

  @Override
  public void init(OutputMode outputMode, TimeMode timeMode) {
    seen =
        getHandle()
            .getMapState(
                "seen",
                Encoders.STRING(),
                Encoders.tuple(Encoders.LONG(), Encoders.LONG()),
                TTLConfig.NONE());
    swept = new HashSet<>();
  }

  @Override
  public scala.collection.Iterator<Row> handleInputRows(
      Integer bucket, scala.collection.Iterator<Row> rows, TimerValues timerValues) {
    List<Row> copies = new ArrayList<>();
    rows.foreach(copies::add);
    List<Row> out = new ArrayList<>(copies.size());
    if (bucket < 0) {
      for (Row row : copies) {
        out.add(withCopy(row, null));
      }
      return CollectionConverters.asScala(out.iterator());
    }
    copies.sort(
        Comparator.comparingInt((Row r) -> r.getInt(partitionIndex))
            .thenComparingLong(r -> r.getLong(offsetIndex)));
    Map<String, Long> firstInBatch = new HashMap<>();
    long earliestAdded = Long.MAX_VALUE;
    for (Row row : copies) {
      String eventId = row.getString(eventIdIndex);
      long content = row.getLong(contentIndex);
      Long known = firstInBatch.get(eventId);
      if (known == null) {
        Tuple2<Long, Long> stored = seen.getValue(eventId);
        if (stored != null) {
          known = stored._1();
          firstInBatch.put(eventId, known);
        }
      }
      String copy;
      if (known == null) {
        long windowEnd = row.getLong(windowEndIndex);
        seen.updateValue(eventId, new Tuple2<>(content, windowEnd));
        firstInBatch.put(eventId, content);
        earliestAdded = Math.min(earliestAdded, windowEnd);
        copy = "accepted";
      } else {
        copy = known == content ? "duplicate" : "conflict";
      }
      out.add(withCopy(row, copy));
    }
    if (earliestAdded != Long.MAX_VALUE) {
      long due = earliestTimer();
      if (earliestAdded < due) {
        getHandle().registerTimer(earliestAdded);
      }
    }
    return CollectionConverters.asScala(out.iterator());
  }

  @Override
  public scala.collection.Iterator<Row> handleExpiredTimer(
      Integer bucket, TimerValues timerValues, ExpiredTimerInfo expiredTimerInfo) {
    if (!swept.add(bucket)) {
      return CollectionConverters.asScala(Collections.<Row>emptyIterator());
    }
    long until =
        Math.max(expiredTimerInfo.getExpiryTimeInMs(), timerValues.getCurrentWatermarkInMs());
    List<String> expired = new ArrayList<>();
    long[] earliestLeft = {Long.MAX_VALUE};
    seen.iterator()
        .foreach(
            entry -> {
              long windowEnd = entry._2()._2();
              if (windowEnd <= until) {
                expired.add(entry._1());
              } else {
                earliestLeft[0] = Math.min(earliestLeft[0], windowEnd);
              }
              return null;
            });
    for (String eventId : expired) {
      seen.removeKey(eventId);
    }
    // One timer a bucket, at its earliest window end: the timers of the windows swept now fire
    // and find the bucket swept; a later one is replaced by the earliest left.
    List<Long> later = new ArrayList<>();
    getHandle()
        .listTimers()
        .foreach(
            due -> {
              if ((Long) due > until) {
                later.add((Long) due);
              }
              return null;
            });
    for (long due : later) {
      if (due != earliestLeft[0]) {
        getHandle().deleteTimer(due);
      }
    }
    if (earliestLeft[0] != Long.MAX_VALUE && !later.contains(earliestLeft[0])) {
      getHandle().registerTimer(earliestLeft[0]);
    }
    return CollectionConverters.asScala(Collections.<Row>emptyIterator());
  }

  /** When this bucket's next sweep is due (its earliest timer), or never. */
  private long earliestTimer() {
    long[] earliest = {Long.MAX_VALUE};
    getHandle()
        .listTimers()
        .foreach(
            due -> {
              earliest[0] = Math.min(earliest[0], (Long) due);
              return null;
            });
    return earliest[0];
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
