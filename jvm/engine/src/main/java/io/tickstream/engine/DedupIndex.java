package io.tickstream.engine;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

import org.apache.spark.TaskContext;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.catalyst.expressions.JoinedRow;
import org.apache.spark.sql.catalyst.expressions.UnsafeProjection;
import org.apache.spark.sql.catalyst.expressions.UnsafeRow;
import org.apache.spark.sql.catalyst.expressions.codegen.UnsafeRowWriter;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.execution.streaming.state.NoPrefixKeyStateEncoderSpec;
import org.apache.spark.sql.execution.streaming.state.PrefixKeyScanStateEncoderSpec;
import org.apache.spark.sql.execution.streaming.state.StateStore;
import org.apache.spark.sql.execution.streaming.state.StateStoreRDD;
import org.apache.spark.sql.execution.streaming.state.UnsafeRowPair;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.TaskCompletionListener;
import org.apache.spark.unsafe.types.UTF8String;

import scala.Option;
import scala.collection.Iterator;
import scala.collection.immutable.Map$;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction2;

/**
 * The keyed dedup index of the bars job: event_id to the content of its first copy, kept in
 * Spark's state store (RocksDB with changelog checkpoints), so that the work of a micro-batch
 * grows with the batch and not with the ticks of the open windows.
 *
 * <p>It runs inside the job's micro-batch function, as Spark's own stateful operators run: the
 * batch is partitioned by event_id into a fixed number of state partitions, and each task opens
 * its partition's store at the version of this batch, classifies the rows and commits the next
 * version. A batch run again after a crash opens the same version again, so it classifies the
 * same way. Each output row is the input row plus {@code copy} and {@code batch_id}. The copy
 * of a tick ({@code tick} true) is {@code late} when the watermark in force has closed its
 * window, whatever the index holds (it is neither looked up nor kept); otherwise {@code accepted}
 * for the first copy of an event_id (the one already in the index, or the first by Kafka
 * partition then offset), {@code duplicate} for another copy with the same {@code content}
 * hash, {@code conflict} for another copy with other content. Other messages get null.
 *
 * <p>The watermark and the batch id are applied here, not as literals in Spark expressions:
 * Spark compiles the code it generates for each distinct plan, and a literal that changes at
 * every batch made it compile the parsing stage again at every batch (docs/engine.md).
 *
 * <p>The store holds three column families: event_id to its content hash; an expiry index,
 * (window end, batch) to the event_ids that batch added for that window end (one value a window
 * a batch, not a write a tick), scanned by window end; and the window ends present. At the start
 * of a batch every entry whose window ended at or before the job's watermark is removed:
 * eviction touches only what it removes. A tick of such a window is late and never reaches the index, so
 * an entry never leaves while a copy of its tick could still count.
 *
 * <p>This uses Spark's state store API, which is internal to Spark: it is compiled against the
 * pinned Spark version, and the bars job's tests exercise it end to end (duplicates across
 * batches, restarts and SIGKILLs).
 */
public final class DedupIndex {
  public static final String COPY = "copy";
  public static final String TICK = "tick";
  public static final String BATCH_ID = "batch_id";
  static final String EXPIRY = "expiry";

  static final StructType KEY = new StructType().add("event_id", DataTypes.StringType, false);
  static final StructType VALUE = new StructType().add("content", DataTypes.LongType, false);
  static final StructType EXPIRY_KEY =
      new StructType()
          .add("window_end_ms", DataTypes.LongType, false)
          .add("batch_id", DataTypes.LongType, false);
  static final StructType EXPIRY_VALUE =
      new StructType().add("event_ids", DataTypes.BinaryType, false);
  static final StructType MARK = new StructType().add("one", DataTypes.ByteType, false);
  static final String WINDOWS = "windows";
  static final String SEQUENCES = "sequences";
  static final String SEQUENCE_EXPIRY = "sequence_expiry";
  static final StructType CHUNK_KEY =
      new StructType()
          .add("producer", DataTypes.LongType, false)
          .add("chunk", DataTypes.LongType, false);
  static final StructType CHUNK_VALUE = new StructType().add("slots", DataTypes.BinaryType, false);
  /** Event_ids of the producer's form, for the shuffle: {@link SequenceIds}, canonical only. */
  static final String SEQUENCE_ID = "^[0-9a-f]{16}-(0|[1-9][0-9]{0,17})$";
  static final StructType WINDOWS_KEY =
      new StructType().add("window_end_ms", DataTypes.LongType, false);

  private DedupIndex() {}

  /**
   * The rows of {@code batch}, each with its {@code copy} class.
   *
   * @param batch a micro-batch with the columns {@code tick}, {@code event_id}, {@code content},
   *     {@code window_end_ms}, {@code kafka_partition} and {@code kafka_offset}
   * @param location the index's checkpoint folder
   * @param runId this run of the query (a new one per start)
   * @param batchId the micro-batch: the store is read at this version and commits the next
   * @param watermarkMs the job's watermark in force: entries of windows ended by then are evicted
   * @param partitions the number of state partitions (fixed for the life of the index)
   * @param sequences whether event_ids of the producer's form are kept in chunks of sequence
   *     numbers ({@link SequenceIds}); fixed for the life of the index, like {@code partitions}
   */
  public static Dataset<Row> classify(
      Dataset<Row> batch,
      String location,
      String runId,
      long batchId,
      long watermarkMs,
      int partitions,
      boolean sequences) {
    Column id = batch.col("event_id");
    // The rows of one chunk meet in one task; any other event_id is partitioned by itself,
    // with the same hash as an index without chunks.
    Column key =
        sequences
            ? functions
                .when(
                    id.rlike(SEQUENCE_ID),
                    functions.concat(
                        functions.substring(id, 1, 16),
                        functions.lit("/"),
                        functions
                            .shiftright(functions.substring(id, 18, 18).cast("long"), SequenceIds.SHIFT)
                            .cast("string")))
                .otherwise(id)
            : id;
    org.apache.spark.sql.classic.Dataset<Row> input =
        (org.apache.spark.sql.classic.Dataset<Row>) batch.repartition(partitions, key);
    SparkSession session = input.sparkSession();
    StructType schema = input.schema();
    StructType output =
        schema.add(COPY, DataTypes.StringType, true).add(BATCH_ID, DataTypes.LongType, false);
    RDD<InternalRow> rows = input.queryExecution().toRdd();
    ClassTag<InternalRow> tag = ClassTag$.MODULE$.apply(InternalRow.class);
    RDD<InternalRow> classified =
        new StateStoreRDD<InternalRow, InternalRow>(
            rows,
            new Update(schema, output, batchId, watermarkMs, sequences),
            location,
            UUID.fromString(runId),
            0L,
            batchId,
            Option.empty(),
            Option.empty(),
            KEY,
            VALUE,
            new NoPrefixKeyStateEncoderSpec(KEY),
            session.sessionState(),
            Option.apply(session.streams().stateStoreCoordinator()),
            true,
            Map$.MODULE$.empty(),
            false,
            tag,
            tag);
    return session.internalCreateDataFrame(classified, output, false);
  }

  /** One task: evict, classify its partition's rows, commit. */
  static final class Update
      extends AbstractFunction2<StateStore, Iterator<InternalRow>, Iterator<InternalRow>>
      implements Serializable {
    private static final long serialVersionUID = 1L;
    private static final UTF8String ACCEPTED = UTF8String.fromString("accepted");
    private static final UTF8String DUPLICATE = UTF8String.fromString("duplicate");
    private static final UTF8String CONFLICT = UTF8String.fromString("conflict");
    private static final UTF8String LATE = UTF8String.fromString("late");

    private final StructType output;
    private final long batchId;
    private final long watermarkMs;
    private final int tick;
    private final int eventId;
    private final int content;
    private final int windowEnd;
    private final int partition;
    private final int offset;
    private final boolean sequences;

    Update(StructType input, StructType output, long batchId, long watermarkMs, boolean sequences) {
      this.sequences = sequences;
      this.output = output;
      this.batchId = batchId;
      this.watermarkMs = watermarkMs;
      this.tick = input.fieldIndex(TICK);
      this.eventId = input.fieldIndex("event_id");
      this.content = input.fieldIndex("content");
      this.windowEnd = input.fieldIndex("window_end_ms");
      this.partition = input.fieldIndex("kafka_partition");
      this.offset = input.fieldIndex("kafka_offset");
    }

    @Override
    public Iterator<InternalRow> apply(StateStore store, Iterator<InternalRow> input) {
      store.createColFamilyIfAbsent(
          EXPIRY,
          EXPIRY_KEY,
          EXPIRY_VALUE,
          new PrefixKeyScanStateEncoderSpec(EXPIRY_KEY, 1),
          false,
          false);
      store.createColFamilyIfAbsent(
          WINDOWS,
          WINDOWS_KEY,
          MARK,
          new NoPrefixKeyStateEncoderSpec(WINDOWS_KEY),
          false,
          false);
      if (sequences) {
        store.createColFamilyIfAbsent(
            SEQUENCES,
            CHUNK_KEY,
            CHUNK_VALUE,
            new NoPrefixKeyStateEncoderSpec(CHUNK_KEY),
            false,
            false);
        store.createColFamilyIfAbsent(
            SEQUENCE_EXPIRY,
            EXPIRY_KEY,
            EXPIRY_VALUE,
            new PrefixKeyScanStateEncoderSpec(EXPIRY_KEY, 1),
            false,
            false);
      }
      // A task that fails before its commit leaves the version unwritten (Spark runs it again).
      TaskContext.get()
          .addTaskCompletionListener(
              (TaskCompletionListener)
                  context -> {
                    if (!store.hasCommitted()) {
                      store.abort();
                    }
                  });
      Keys keys = new Keys();
      evict(store, keys);

      List<InternalRow> rows = new ArrayList<>();
      List<Integer> ticks = new ArrayList<>();
      List<Integer> late = new ArrayList<>();
      Chunks chunks = new Chunks(store, keys);
      long[] parsed = new long[2];
      while (input.hasNext()) {
        InternalRow row = input.next().copy();
        if (!row.isNullAt(tick) && row.getBoolean(tick)) {
          if (row.getLong(windowEnd) <= watermarkMs) {
            late.add(rows.size()); // its window is closed: late first, never looked up
          } else if (sequences && SequenceIds.parse(row.getUTF8String(eventId), parsed)) {
            chunks.note(rows.size(), parsed[0], parsed[1]);
          } else {
            ticks.add(rows.size());
          }
        }
        rows.add(row);
      }
      UTF8String[] copies = new UTF8String[rows.size()];
      for (int i : late) {
        copies[i] = LATE;
      }
      Map<Long, EventIds> added = classifyIds(store, keys, rows, ticks, copies);
      Map<Long, Map<Chunk, Long>> addedNumbers = chunks.classify(rows, copies);
      for (Map.Entry<Long, EventIds> window : added.entrySet()) {
        long end = window.getKey();
        store.put(keys.expiry(end, batchId), keys.blob(window.getValue().bytes()), EXPIRY);
        store.put(keys.window(end), keys.one(), WINDOWS);
      }
      for (Map.Entry<Long, Map<Chunk, Long>> window : addedNumbers.entrySet()) {
        long end = window.getKey();
        store.put(
            keys.expiry(end, batchId), keys.blob(Chunk.listed(window.getValue())), SEQUENCE_EXPIRY);
        store.put(keys.window(end), keys.one(), WINDOWS);
      }
      store.commit();

      UnsafeProjection project = UnsafeProjection.create(output);
      JoinedRow joined = new JoinedRow();
      GenericInternalRow extra = new GenericInternalRow(2);
      extra.update(1, batchId);
      return CollectionConverters.asScala(
          new java.util.Iterator<InternalRow>() {
            private int next = 0;

            @Override
            public boolean hasNext() {
              return next < copies.length;
            }

            @Override
            public InternalRow next() {
              extra.update(0, copies[next]);
              return project.apply(joined.apply(rows.get(next++), extra));
            }
          });
    }

    /**
     * The event_ids indexed whole: each looked up (and, when new, written) one by one. The
     * first copy of an event_id in the batch is the first by Kafka partition and offset: an
     * order that does not depend on how the shuffle delivered the rows. Returns the ids added,
     * by window end.
     */
    private Map<Long, EventIds> classifyIds(
        StateStore store,
        Keys keys,
        List<InternalRow> rows,
        List<Integer> ticks,
        UTF8String[] copies) {
      ticks.sort(
          Comparator.comparingInt((Integer i) -> rows.get(i).getInt(partition))
              .thenComparingLong(i -> rows.get(i).getLong(offset)));
      Map<UTF8String, Long> known = new HashMap<>(ticks.size() * 2);
      Map<Long, EventIds> added = new HashMap<>();
      String main = StateStore.DEFAULT_COL_FAMILY_NAME();
      for (int i : ticks) {
        InternalRow row = rows.get(i);
        UTF8String id = row.getUTF8String(eventId);
        long hash = row.getLong(content);
        Long first = known.get(id);
        if (first == null) {
          UnsafeRow stored = store.get(keys.id(id), main);
          if (stored != null) {
            first = stored.getLong(0);
            known.put(id, first);
          }
        }
        if (first == null) {
          long end = row.getLong(windowEnd);
          store.put(keys.id(id), keys.value(hash), main);
          added.computeIfAbsent(end, e -> new EventIds()).add(id);
          known.put(id, hash);
          copies[i] = ACCEPTED;
        } else {
          copies[i] = first == hash ? DUPLICATE : CONFLICT;
        }
      }
      return added;
    }

    /** The chunks of sequence numbers a task's rows touch, each read once and written once. */
    private final class Chunks {
      private final StateStore store;
      private final Keys keys;
      private final Map<Chunk, Chunk> touched = new HashMap<>();
      private final List<Chunk> byIndex = new ArrayList<>();
      private final Chunk probe = new Chunk(0, 0);
      private Chunk last;
      // The numbered rows, in arrival order: row index, its chunk's index, its slot.
      private int size;
      private int[] rowOf = new int[1024];
      private int[] chunkOf = new int[1024];
      private byte[] slotOf = new byte[1024];

      Chunks(StateStore store, Keys keys) {
        this.store = store;
        this.keys = keys;
      }

      /** Row {@code i} holds sequence number {@code n} of {@code producer}. */
      void note(int i, long producer, long n) {
        long number = n >>> SequenceIds.SHIFT;
        Chunk chunk = last;
        if (chunk == null || chunk.producer != producer || chunk.number != number) {
          probe.producer = producer;
          probe.number = number;
          chunk = touched.get(probe);
          if (chunk == null) {
            chunk = new Chunk(producer, number);
            chunk.load(store, keys);
            chunk.index = byIndex.size();
            byIndex.add(chunk);
            touched.put(chunk, chunk);
          }
          last = chunk;
        }
        if (size == rowOf.length) {
          rowOf = java.util.Arrays.copyOf(rowOf, size * 2);
          chunkOf = java.util.Arrays.copyOf(chunkOf, size * 2);
          slotOf = java.util.Arrays.copyOf(slotOf, size * 2);
        }
        rowOf[size] = i;
        chunkOf[size] = chunk.index;
        slotOf[size] = (byte) (n & (SequenceIds.SLOTS - 1));
        size++;
      }

      /**
       * Classifies the numbered rows: a number present before the batch is a duplicate or a
       * conflict by its stored hash; otherwise its first copy by Kafka partition and offset is
       * accepted and the others compared with it. Writes each changed chunk; returns the
       * slots added, by window end and chunk.
       */
      Map<Long, Map<Chunk, Long>> classify(List<InternalRow> rows, UTF8String[] copies) {
        for (int k = 0; k < size; k++) {
          Chunk chunk = byIndex.get(chunkOf[k]);
          int slot = slotOf[k];
          if ((chunk.present >>> slot & 1L) != 0) {
            continue;
          }
          int i = rowOf[k];
          int first = chunk.first[slot];
          if (first < 0 || earlier(rows.get(i), rows.get(first))) {
            chunk.first[slot] = i;
          }
        }
        Map<Long, Map<Chunk, Long>> added = new HashMap<>();
        for (int k = 0; k < size; k++) {
          Chunk chunk = byIndex.get(chunkOf[k]);
          int slot = slotOf[k];
          int i = rowOf[k];
          InternalRow row = rows.get(i);
          long hash = row.getLong(content);
          if ((chunk.present >>> slot & 1L) != 0) {
            copies[i] = chunk.hashes[slot] == hash ? DUPLICATE : CONFLICT;
          } else if (chunk.first[slot] == i) {
            copies[i] = ACCEPTED;
            chunk.hashes[slot] = hash;
            chunk.fresh |= 1L << slot;
            added
                .computeIfAbsent(row.getLong(windowEnd), e -> new HashMap<>())
                .merge(chunk, 1L << slot, (x, y) -> x | y);
          } else {
            long first = rows.get(chunk.first[slot]).getLong(content);
            copies[i] = first == hash ? DUPLICATE : CONFLICT;
          }
        }
        for (Chunk chunk : byIndex) {
          if (chunk.fresh != 0) {
            store.put(
                keys.chunk(chunk.producer, chunk.number),
                keys.slots(SequenceIds.encode(chunk.present | chunk.fresh, chunk.hashes)),
                SEQUENCES);
          }
        }
        return added;
      }

      private boolean earlier(InternalRow a, InternalRow b) {
        int byPartition = Integer.compare(a.getInt(partition), b.getInt(partition));
        return byPartition != 0 ? byPartition < 0 : a.getLong(offset) < b.getLong(offset);
      }
    }

    /**
     * Remove every entry whose window ended at or before the watermark: the few window ends in
     * the store first, then each one's entries by a prefix scan of the expiry index. (Reading
     * the expiry index from its start instead would step over the tombstones of every entry
     * removed before, until RocksDB compacts them: measured at 50-500 ms a batch.)
     */
    private void evict(StateStore store, Keys keys) {
      List<Long> ended = new ArrayList<>();
      Iterator<UnsafeRowPair> windows = store.iterator(WINDOWS);
      while (windows.hasNext()) {
        long end = windows.next().key().getLong(0);
        if (end <= watermarkMs) {
          ended.add(end);
        }
      }
      String main = StateStore.DEFAULT_COL_FAMILY_NAME();
      for (long end : ended) {
        List<UnsafeRow> lists = new ArrayList<>();
        Iterator<UnsafeRowPair> entries = store.prefixScan(keys.window(end), EXPIRY);
        while (entries.hasNext()) {
          UnsafeRowPair entry = entries.next();
          for (UTF8String id : EventIds.read(entry.value().getBinary(0))) {
            store.remove(keys.id(id), main);
          }
          lists.add(entry.key().copy());
        }
        for (UnsafeRow key : lists) {
          store.remove(key, EXPIRY);
        }
        if (sequences) {
          evictNumbers(store, keys, end);
        }
        store.remove(keys.window(end), WINDOWS);
      }
    }

    /** Clears the slots the batches added for window end {@code end}, chunk by chunk. */
    private void evictNumbers(StateStore store, Keys keys, long end) {
      Map<Chunk, Long> cleared = new HashMap<>();
      List<UnsafeRow> lists = new ArrayList<>();
      Iterator<UnsafeRowPair> entries = store.prefixScan(keys.window(end), SEQUENCE_EXPIRY);
      while (entries.hasNext()) {
        UnsafeRowPair entry = entries.next();
        Chunk.read(entry.value().getBinary(0), cleared);
        lists.add(entry.key().copy());
      }
      for (Map.Entry<Chunk, Long> each : cleared.entrySet()) {
        Chunk chunk = each.getKey();
        chunk.load(store, keys);
        long present = chunk.present & ~each.getValue();
        UnsafeRow key = keys.chunk(chunk.producer, chunk.number);
        if (present == 0) {
          store.remove(key, SEQUENCES);
        } else {
          store.put(key, keys.slots(SequenceIds.encode(present, chunk.hashes)), SEQUENCES);
        }
      }
      for (UnsafeRow key : lists) {
        store.remove(key, SEQUENCE_EXPIRY);
      }
    }
  }

  /** The event_ids a task added for one window end, as one value: each a length, then bytes. */
  private static final class EventIds {
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream();
    private final DataOutputStream out = new DataOutputStream(buffer);

    void add(UTF8String id) {
      try {
        out.writeInt(id.numBytes());
        out.write(id.getBytes());
      } catch (IOException e) {
        throw new UncheckedIOException(e); // a byte array stream does not fail
      }
    }

    byte[] bytes() {
      return buffer.toByteArray();
    }

    static List<UTF8String> read(byte[] bytes) {
      List<UTF8String> ids = new ArrayList<>();
      ByteBuffer in = ByteBuffer.wrap(bytes);
      while (in.hasRemaining()) {
        byte[] id = new byte[in.getInt()];
        in.get(id);
        ids.add(UTF8String.fromBytes(id));
      }
      return ids;
    }
  }

  /** A chunk of {@link SequenceIds#SLOTS} sequence numbers of one producer, as a task sees it. */
  static final class Chunk {
    long producer;
    long number; // n >>> SHIFT
    int index;
    long present; // the slots in the store before the batch
    long fresh; // the slots this batch adds
    final long[] hashes = new long[SequenceIds.SLOTS];
    final int[] first; // per slot not present: the row of its first copy in the batch, or -1

    Chunk(long producer, long number) {
      this.producer = producer;
      this.number = number;
      this.first = new int[SequenceIds.SLOTS];
      java.util.Arrays.fill(first, -1);
    }

    void load(StateStore store, Keys keys) {
      UnsafeRow stored = store.get(keys.chunk(producer, number), SEQUENCES);
      present = stored == null ? 0 : SequenceIds.decode(stored.getBinary(0), hashes);
    }

    /** The chunks and slots a batch added for one window end: (producer, number, slots)s. */
    static byte[] listed(Map<Chunk, Long> slots) {
      ByteBuffer out = ByteBuffer.allocate(24 * slots.size());
      for (Map.Entry<Chunk, Long> each : slots.entrySet()) {
        out.putLong(each.getKey().producer).putLong(each.getKey().number).putLong(each.getValue());
      }
      return out.array();
    }

    /** Adds the slots of a {@link #listed} value to {@code into}, by chunk. */
    static void read(byte[] listed, Map<Chunk, Long> into) {
      ByteBuffer in = ByteBuffer.wrap(listed);
      while (in.hasRemaining()) {
        Chunk chunk = new Chunk(in.getLong(), in.getLong());
        into.merge(chunk, in.getLong(), (x, y) -> x | y);
      }
    }

    @Override
    public boolean equals(Object other) {
      return other instanceof Chunk c && c.producer == producer && c.number == number;
    }

    @Override
    public int hashCode() {
      return Long.hashCode(producer * 31 + number);
    }
  }

  /** Reused writers for the store's keys and values (the store copies what it keeps). */
  private static final class Keys {
    private final UnsafeRowWriter id = new UnsafeRowWriter(1, 32);
    private final UnsafeRowWriter value = new UnsafeRowWriter(1);
    private final UnsafeRowWriter expiry = new UnsafeRowWriter(2);
    private final UnsafeRowWriter blob = new UnsafeRowWriter(1, 4096);
    private final UnsafeRowWriter window = new UnsafeRowWriter(1);
    private final UnsafeRowWriter one = new UnsafeRowWriter(1);
    private final UnsafeRowWriter chunk = new UnsafeRowWriter(2);
    private final UnsafeRowWriter slots = new UnsafeRowWriter(1, 8 + 8 * SequenceIds.SLOTS);

    UnsafeRow chunk(long producer, long number) {
      return longs(chunk, producer, number);
    }

    UnsafeRow slots(byte[] bytes) {
      return bytes(slots, bytes);
    }

    UnsafeRow id(UTF8String eventId) {
      start(id).write(0, eventId);
      return id.getRow();
    }

    UnsafeRow value(long content) {
      start(value).write(0, content);
      return value.getRow();
    }

    UnsafeRow expiry(long windowEnd, long batchId) {
      return longs(expiry, windowEnd, batchId);
    }

    UnsafeRow blob(byte[] bytes) {
      return bytes(blob, bytes);
    }

    private static UnsafeRow longs(UnsafeRowWriter writer, long first, long second) {
      start(writer).write(0, first);
      writer.write(1, second);
      return writer.getRow();
    }

    private static UnsafeRow bytes(UnsafeRowWriter writer, byte[] bytes) {
      start(writer).write(0, bytes);
      return writer.getRow();
    }

    UnsafeRow window(long windowEnd) {
      start(window).write(0, windowEnd);
      return window.getRow();
    }

    UnsafeRow one() {
      start(one).write(0, (byte) 1);
      return one.getRow();
    }

    /** A writer emptied for its next row (``reset`` alone keeps the last row's null bits). */
    private static UnsafeRowWriter start(UnsafeRowWriter writer) {
      writer.reset();
      writer.zeroOutNullBytes();
      return writer;
    }
  }
}
