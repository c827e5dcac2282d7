package ai.longrwkv.core.dist;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * Which rank owns which trainable tensor under ZeRO stage 1 and 2: the owner keeps the tensor's optimizer moments
 * (and, in mixed precision, its fp32 master weights), steps it, and sends the updated values to the other ranks; at
 * stage 2 it is also the only rank that accumulates the tensor's gradient.
 *
 * <p>Ownership is by whole tensor, never a slice of one, so a tensor's optimizer step is the single-device step on
 * the same values. The assignment is greedy longest-processing-time: the tensors in order of size, largest first
 * (equal sizes in key order, {@link String#compareTo}), each to the rank that owns the fewest elements so far (equal
 * loads: the lowest rank). It depends only on the keys, sizes and rank count, not on the order they are given in, so
 * every rank computes the same assignment from its own list; and the most-loaded rank owns at most the average plus
 * the largest tensor ({@link #maxElements}).
 *
 * <p>Used by the trainer to shard its state and by {@code MemoryPlan} to predict each rank's memory.
 */
public final class ZeroShards {

    /** One trainable tensor: its key (a state-dict key such as "blocks.3.att.key.weight") and its element count. */
    public record Entry(String key, long elements) {
        public Entry {
            if (key == null) throw new IllegalArgumentException("a tensor without a key");
            if (elements < 0) throw new IllegalArgumentException(key + " has " + elements + " elements");
        }
    }

    private final int ranks;
    private final Map<String, Integer> owner;
    private final List<List<String>> owned;
    private final long[] elements;

    private ZeroShards(int ranks, Map<String, Integer> owner, List<List<String>> owned, long[] elements) {
        this.ranks = ranks;
        this.owner = owner;
        this.owned = owned;
        this.elements = elements;
    }

    /**
     * Assigns every tensor to exactly one of {@code ranks} ranks (see the class comment for the rule).
     *
     * @throws IllegalArgumentException for ranks < 1 or a key given twice
     */
    public static ZeroShards assign(List<Entry> tensors, int ranks) {
        if (ranks < 1) throw new IllegalArgumentException("ranks must be >= 1, got " + ranks);
        List<Entry> order = new ArrayList<>(tensors);
        order.sort(Comparator.comparingLong(Entry::elements).reversed().thenComparing(Entry::key));
        long[] load = new long[ranks];
        // the rank with the fewest elements so far, the lowest rank among equals
        PriorityQueue<Integer> next = new PriorityQueue<>(ranks, (a, b) -> load[a] != load[b] ? Long.compare(load[a], load[b]) : Integer.compare(a, b));
        for (int r = 0; r < ranks; r++) next.add(r);
        Map<String, Integer> owner = new HashMap<>();
        List<List<String>> owned = new ArrayList<>();
        for (int r = 0; r < ranks; r++) owned.add(new ArrayList<>());
        for (Entry e : order) {
            int r = next.poll();
            if (owner.putIfAbsent(e.key(), r) != null) throw new IllegalArgumentException("tensor '" + e.key() + "' is listed twice");
            owned.get(r).add(e.key());
            load[r] += e.elements();
            next.add(r);
        }
        List<List<String>> frozen = new ArrayList<>();
        for (List<String> keys : owned) {
            Collections.sort(keys);
            frozen.add(List.copyOf(keys));
        }
        return new ZeroShards(ranks, owner, List.copyOf(frozen), load);
    }

    /** Number of ranks. */
    public int ranks() { return ranks; }

    /** The rank that owns {@code key}. */
    public int owner(String key) {
        Integer r = owner.get(key);
        if (r == null) throw new IllegalArgumentException("'" + key + "' is not one of the sharded tensors");
        return r;
    }

    /** Whether {@code rank} owns {@code key}. */
    public boolean owns(int rank, String key) { return owner(key) == rank; }

    /** The keys {@code rank} owns, in key order. */
    public List<String> owned(int rank) { return owned.get(rank); }

    /** Elements {@code rank} owns. */
    public long elements(int rank) { return elements[rank]; }

    /** Elements the most-loaded rank owns. */
    public long maxElements() {
        long m = 0;
        for (long e : elements) m = Math.max(m, e);
        return m;
    }

    /** Elements of all tensors together. */
    public long totalElements() {
        long n = 0;
        for (long e : elements) n += e;
        return n;
    }
}
