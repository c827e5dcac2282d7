package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.cuda.Device.NcclType;
import ai.longrwkv.core.dist.CollectiveException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;

/**
 * NCCL's documented semantics for emulated devices: groups of ranks that meet at each collective, on host copies of
 * the ranks' buffers. Several emulated devices of one process (one Java thread per rank) find their group in a
 * registry keyed by the unique id.
 *
 * <p>Each collective is a rendezvous: rank r's n-th call meets every other rank's n-th call; they must agree on the
 * operation, the element type, the count and the root, else every rank fails with a message that lists what each
 * rank called. Sums are formed in rank order (acc = rank 0's values, acc += rank 1's, ...) in the data's own type
 * (fp32 in fp32, fp64 in fp64), so results are reproducible bit for bit and a test can recompute them on the host;
 * bf16 is moved (broadcast, allGather) but never summed. A rank that waits longer than the group's timeout fails
 * with a message naming who arrived and who did not, and breaks the group: every rank still waiting, and every later
 * call, fails at once with that message instead of hanging. {@link Member#abort} breaks it with the failing rank's
 * reason.
 *
 * <p>This class only moves bytes; {@link EmulatedDevice} copies each rank's send buffer out of its memory before the
 * rendezvous and its result in afterwards, on the rank's own thread.
 */
final class EmulatedNccl {
    private EmulatedNccl() { }

    /** First bytes of every id this emulation makes. */
    private static final byte[] MAGIC = "LRWKVEMUNCCL1".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    private static final int KEY_BYTES = MAGIC.length + 16;
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Groups whose ranks are still joining, by id key; a group leaves the registry when all ranks have joined. */
    private static final Map<String, Group> JOINING = new HashMap<>();
    /** The hubs of the ids this process made, by key, while they listen (guarded by JOINING). */
    private static final Map<String, EmulatedNcclHub> HUBS = new HashMap<>();

    /**
     * A new id. This process holds its group and listens for ranks of other processes on a loopback port (the
     * address {@code -Dlongrwkv.emu.hub} names, default 127.0.0.1), which the id carries after the key: 1 byte
     * address length, the address, 2 bytes port.
     */
    static byte[] newId() {
        byte[] id = new byte[Device.NCCL_UNIQUE_ID_BYTES];
        System.arraycopy(MAGIC, 0, id, 0, MAGIC.length);
        byte[] nonce = new byte[16];
        RANDOM.nextBytes(nonce);
        System.arraycopy(nonce, 0, id, MAGIC.length, nonce.length);
        String key = HexFormat.of().formatHex(id, 0, KEY_BYTES);
        EmulatedNcclHub hub = EmulatedNcclHub.start(key);
        byte[] addr = hub.address().getAddress().getAddress();
        id[KEY_BYTES] = (byte) addr.length;
        System.arraycopy(addr, 0, id, KEY_BYTES + 1, addr.length);
        int port = hub.address().getPort();
        id[KEY_BYTES + 1 + addr.length] = (byte) (port >> 8);
        id[KEY_BYTES + 2 + addr.length] = (byte) port;
        synchronized (JOINING) {
            HUBS.put(key, hub);
        }
        return id;
    }

    /** The hub address an id carries. */
    static java.net.InetSocketAddress hubAddress(byte[] id) {
        int len = id[KEY_BYTES] & 0xff;
        if (len != 4 && len != 16) throw new IllegalArgumentException("the communicator id carries no hub address (a damaged id?)");
        byte[] addr = java.util.Arrays.copyOfRange(id, KEY_BYTES + 1, KEY_BYTES + 1 + len);
        int port = (id[KEY_BYTES + 1 + len] & 0xff) << 8 | (id[KEY_BYTES + 2 + len] & 0xff);
        try {
            return new java.net.InetSocketAddress(java.net.InetAddress.getByAddress(addr), port);
        } catch (java.net.UnknownHostException e) {
            throw new IllegalArgumentException("the communicator id carries a bad hub address");
        }
    }

    /** Called by a hub when it stops listening. */
    static void hubClosed(String key) {
        synchronized (JOINING) {
            HUBS.remove(key);
        }
    }

    /** The registry key of an id, or an error when it is not one of this emulation's ids. */
    static String key(byte[] id) {
        if (id == null || id.length != Device.NCCL_UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("a communicator id has " + Device.NCCL_UNIQUE_ID_BYTES + " bytes, got "
                    + (id == null ? "none" : id.length));
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (id[i] != MAGIC[i]) {
                throw new IllegalArgumentException("the communicator id was not made by the emulated device (a real NCCL id?): "
                        + "every rank must run on the same kind of device, and the id must come from newCommunicatorId()");
            }
        }
        return HexFormat.of().formatHex(id, 0, KEY_BYTES);
    }

    static String seconds(long millis) {
        return millis % 1000 == 0 ? (millis / 1000) + " s" : String.format(java.util.Locale.ROOT, "%.1f s", millis / 1000.0);
    }

    /** "rank 3", "ranks 0, 2"; "no rank" when empty. */
    static String ranks(List<Integer> rs) {
        if (rs.isEmpty()) return "no rank";
        StringJoiner j = new StringJoiner(", ", rs.size() == 1 ? "rank " : "ranks ", "");
        for (int r : rs) j.add(Integer.toString(r));
        return j.toString();
    }

    /**
     * Joins the group {@code id} as rank {@code rank} of {@code size}; returns when all ranks have joined. Throws
     * {@link CollectiveException} after {@code timeoutMillis}, {@link IllegalArgumentException} for a rank outside
     * 0..size-1, a rank that joins twice or a size that differs from the other ranks'.
     */
    static Member join(byte[] id, int rank, int size, long timeoutMillis) {
        if (size < 1) throw new IllegalArgumentException("a communicator needs at least one rank, got size " + size);
        if (rank < 0 || rank >= size) throw new IllegalArgumentException("rank " + rank + " is outside 0.." + (size - 1));
        if (timeoutMillis <= 0) throw new IllegalArgumentException("the collective timeout must be positive, got " + timeoutMillis + " ms");
        String key = key(id);
        boolean here;
        synchronized (JOINING) {
            here = HUBS.containsKey(key);
        }
        if (!here) return EmulatedNcclHub.RemoteMember.connect(id, rank, size, timeoutMillis);
        return new LocalMember(joinGroup(key, rank, size, timeoutMillis), rank);
    }

    /** Joins the group of key in this process (for a local rank, or for a remote one on its hub connection). */
    static Group joinGroup(String key, int rank, int size, long timeoutMillis) {
        Group g;
        synchronized (JOINING) {
            g = JOINING.computeIfAbsent(key, k -> new Group(size, timeoutMillis));
        }
        try {
            g.join(rank, size, timeoutMillis);
        } finally {
            // once every rank has joined, or joining failed, nobody else may join: the id's hub stops listening
            EmulatedNcclHub done = null;
            synchronized (JOINING) {
                if (JOINING.get(key) == g && (g.allJoined() || g.broken() != null)) {
                    JOINING.remove(key);
                    done = HUBS.remove(key);
                }
            }
            if (done != null) done.close();
        }
        return g;
    }

    /** What one rank called: the operation, its element type and count, and the root (-1 where there is none). */
    record Spec(String op, NcclType type, long count, int root) {
        /** "allReduce (fp32, 4096 values)", "broadcast (bf16, 10 values, root 1)". */
        String describe() {
            return op + " (" + type.label + ", " + count + (count == 1 ? " value" : " values") + (root >= 0 ? ", root " + root : "") + ")";
        }

        /** Bytes of the send buffer this rank contributes (0 where NCCL does not read it). */
        long sendBytes(int rank, int size) {
            return switch (op) {
                case "broadcast" -> rank == root ? count * type.bytes : 0;
                case "reduceScatter" -> count * size * type.bytes;
                default -> count * type.bytes;
            };
        }

        /** Bytes of the result this rank receives (0 where NCCL does not write its recv buffer). */
        long recvBytes(int rank, int size) {
            return switch (op) {
                case "reduce" -> rank == root ? count * type.bytes : 0;
                case "allGather" -> count * size * type.bytes;
                default -> count * type.bytes;
            };
        }

        boolean sums() { return !op.equals("broadcast") && !op.equals("allGather"); }
    }

    /** One rank's handle on its group: in this process ({@link LocalMember}) or through the hub ({@link RemoteMember}). */
    interface Member {
        int rank();

        int size();

        /**
         * This rank's part of the next collective: its send bytes (empty where the rank contributes none); returns its
         * result bytes (empty where it receives none) once every rank has called it.
         */
        byte[] collective(Spec spec, byte[] send);

        /** The next collective's number (for messages before the call). */
        long nextSeq();

        /** Why the group is broken, or null. */
        String brokenReason();

        void abort(String reason);

        void close();
    }

    /** A rank in the process that holds its group. */
    static final class LocalMember implements Member {
        final Group group;
        final int rank;
        private long seq;
        private boolean closed;

        LocalMember(Group group, int rank) {
            this.group = group;
            this.rank = rank;
        }

        @Override public int rank() { return rank; }

        @Override public int size() { return group.size; }

        @Override
        public byte[] collective(Spec spec, byte[] send) {
            if (closed) throw new IllegalStateException("rank " + rank + ": " + spec.op + " on a closed communicator");
            return group.collective(rank, ++seq, spec, send);
        }

        @Override public long nextSeq() { return seq + 1; }

        @Override public String brokenReason() { return group.broken(); }

        @Override public void abort(String reason) { group.abort(rank, reason); }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            group.leave(rank);
        }
    }

    /** One collective in progress: each rank's spec and contribution, then each rank's result. */
    private static final class Call {
        final long seq;
        final Spec[] specs;
        final byte[][] sends;
        byte[][] results;
        int arrived, collected;

        Call(long seq, int size) {
            this.seq = seq;
            specs = new Spec[size];
            sends = new byte[size][];
        }
    }

    /** The ranks of one id. All state is guarded by the group's monitor. */
    static final class Group {
        final int size;
        final long timeoutMillis;
        private final boolean[] joined, left;
        private int joinedCount;
        private final Map<Long, Call> calls = new HashMap<>();
        /** Why the group cannot go on (the first failure), or null. */
        private String broken;
        /** The collective whose timeout broke the group (0: none). */
        private long timedOutSeq;

        Group(int size, long timeoutMillis) {
            this.size = size;
            this.timeoutMillis = timeoutMillis;
            joined = new boolean[size];
            left = new boolean[size];
        }

        synchronized boolean allJoined() { return joinedCount == size; }

        synchronized String broken() { return broken; }

        private synchronized void join(int rank, int size, long timeout) {
            String refused = null;
            if (size != this.size) {
                refused = "rank " + rank + " joins a communicator of " + size + " ranks, but the ranks before it said "
                        + this.size + ": every rank must be given the same size";
            } else if (joined[rank]) {
                refused = "rank " + rank + " joined the communicator twice: each rank number must be used by exactly one device";
            }
            if (refused != null) {
                breakWith(refused);   // the ranks already waiting fail now, not at their timeout
                throw new IllegalArgumentException(refused);
            }
            joined[rank] = true;
            joinedCount++;
            notifyAll();
            long deadline = System.nanoTime() + timeout * 1_000_000L;
            while (joinedCount < size && broken == null) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    List<Integer> in = new ArrayList<>(), out = new ArrayList<>();
                    for (int r = 0; r < size; r++) (joined[r] ? in : out).add(r);
                    String msg = "rank " + rank + ": communicator init did not complete in " + seconds(timeout) + ": " + ranks(in)
                            + " joined, " + ranks(out) + " did not (is every rank started, with the same id? check the other ranks' output)";
                    breakWith(msg);
                    throw new CollectiveException(msg);
                }
                waitNanos(left);
            }
            if (joinedCount < size) throw new CollectiveException("rank " + rank + ": communicator init failed: " + broken);
        }

        private void waitNanos(long nanos) {
            try {
                long ms = nanos / 1_000_000L;
                wait(Math.max(1, Math.min(ms, 1000)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CollectiveException("interrupted while waiting for the other ranks");
            }
        }

        private void breakWith(String reason) {
            if (broken == null) broken = reason;
            notifyAll();
        }

        synchronized void abort(int rank, String reason) {
            breakWith("rank " + rank + " failed: " + reason);
        }

        synchronized void leave(int rank) {
            left[rank] = true;
            notifyAll();
        }

        private byte[] collective(int rank, long seq, Spec spec, byte[] send) {
            String what = spec.op + " #" + seq + " " + spec.describe().substring(spec.op.length() + 1);
            synchronized (this) {
                if (broken != null) throw new CollectiveException("rank " + rank + ": " + what + ": " + broken);
                Call c = calls.computeIfAbsent(seq, s -> new Call(s, size));
                c.specs[rank] = spec;
                c.sends[rank] = send;
                c.arrived++;
                String mismatch = mismatch(c);
                if (mismatch != null) {
                    breakWith("the ranks called different collectives at #" + seq + ": " + mismatch
                            + " (every rank must issue the same collectives in the same order with the same sizes)");
                    throw new CollectiveException("rank " + rank + ": " + what + ": " + broken);
                }
                if (c.arrived == size) {
                    try {
                        c.results = compute(c);
                    } catch (RuntimeException e) {   // the waiters must not be left to their timeout
                        breakWith(what + " failed on rank " + rank + ": " + e.getMessage());
                        throw new CollectiveException("rank " + rank + ": " + what + ": " + broken, e);
                    }
                    notifyAll();
                }
                long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
                while (c.results == null) {
                    if (broken != null && timedOutSeq == seq) throw new CollectiveException(timedOut(rank, what, c));
                    if (broken != null) throw new CollectiveException("rank " + rank + ": " + what + ": " + broken);
                    for (int r = 0; r < size; r++) {
                        if (c.specs[r] == null && left[r]) {
                            breakWith("rank " + r + " closed its communicator before " + what);
                            throw new CollectiveException("rank " + rank + ": " + what + ": " + broken);
                        }
                    }
                    long rest = deadline - System.nanoTime();
                    if (rest <= 0) {
                        String msg = timedOut(rank, what, c);
                        timedOutSeq = seq;   // the other ranks waiting here fail now, with the same facts
                        breakWith(msg);
                        throw new CollectiveException(msg);
                    }
                    waitNanos(rest);
                }
                byte[] result = c.results[rank];
                c.results[rank] = null;
                if (++c.collected == size) calls.remove(seq);
                return result;
            }
        }

        /** "rank 1: allReduce #12 (fp32, 4096 values) did not complete in 30 s: ranks 0, 1 arrived, rank 2 did not (...)". */
        private String timedOut(int rank, String what, Call c) {
            List<Integer> in = new ArrayList<>(), out = new ArrayList<>();
            for (int r = 0; r < size; r++) (c.specs[r] != null ? in : out).add(r);
            return "rank " + rank + ": " + what + " did not complete in " + seconds(timeoutMillis) + ": " + ranks(in) + " arrived, "
                    + ranks(out) + " did not (a rank died or is stuck: check its output)";
        }

        /** Null when every rank that has arrived called the same thing; else what each rank called. */
        private String mismatch(Call c) {
            Spec first = null;
            boolean differ = false;
            for (Spec s : c.specs) {
                if (s == null) continue;
                if (first == null) first = s;
                else if (!first.equals(s)) differ = true;
            }
            if (!differ) return null;
            StringJoiner j = new StringJoiner(", ");
            for (int r = 0; r < size; r++) j.add("rank " + r + " " + (c.specs[r] == null ? "not yet arrived" : c.specs[r].describe()));
            return j.toString();
        }

        /** Every rank's result, sums in rank order. */
        private byte[][] compute(Call c) {
            Spec s = c.specs[0];
            byte[][] out = new byte[size][];
            switch (s.op) {
                case "broadcast" -> {
                    for (int r = 0; r < size; r++) out[r] = c.sends[s.root];
                }
                case "allGather" -> {
                    int part = Math.toIntExact(s.count * s.type.bytes);
                    byte[] all = new byte[Math.multiplyExact(part, size)];
                    for (int r = 0; r < size; r++) System.arraycopy(c.sends[r], 0, all, r * part, part);
                    for (int r = 0; r < size; r++) out[r] = all;
                }
                case "allReduce" -> {
                    byte[] sum = sum(c.sends, s.type);
                    for (int r = 0; r < size; r++) out[r] = sum;
                }
                case "reduce" -> {
                    byte[] sum = sum(c.sends, s.type);
                    for (int r = 0; r < size; r++) out[r] = r == s.root ? sum : new byte[0];
                }
                case "reduceScatter" -> {
                    byte[] sum = sum(c.sends, s.type);
                    int part = Math.toIntExact(s.count * s.type.bytes);
                    for (int r = 0; r < size; r++) out[r] = java.util.Arrays.copyOfRange(sum, r * part, (r + 1) * part);
                }
                default -> throw new IllegalStateException("unknown collective " + s.op);
            }
            java.util.Arrays.fill(c.sends, null);
            return out;
        }

        /** The element-wise sum in rank order: acc = rank 0's values, acc += rank 1's, ... in fp32 or fp64. */
        static byte[] sum(byte[][] parts, NcclType type) {
            byte[] out = parts[0].clone();
            ByteBuffer acc = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
            for (int r = 1; r < parts.length; r++) {
                ByteBuffer x = ByteBuffer.wrap(parts[r]).order(ByteOrder.LITTLE_ENDIAN);
                if (type == NcclType.F32) {
                    for (int i = 0; i < out.length; i += 4) acc.putFloat(i, acc.getFloat(i) + x.getFloat(i));
                } else if (type == NcclType.F64) {
                    for (int i = 0; i < out.length; i += 8) acc.putDouble(i, acc.getDouble(i) + x.getDouble(i));
                } else {
                    throw new IllegalStateException("the emulated collectives sum only fp32 and fp64, not " + type.label);
                }
            }
            return out;
        }
    }
}
