package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.cuda.Device.NcclType;
import ai.longrwkv.core.backend.cuda.EmulatedNccl.Spec;
import ai.longrwkv.core.dist.CollectiveException;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;

/**
 * The emulated NCCL across processes (several "nodes" on one machine in CI): the process that made an id holds its
 * group and listens on a loopback port the id carries; a rank in another process connects, and a thread of the hub
 * takes part in every collective on its behalf: it receives the rank's send bytes, meets the other ranks in the group
 * (so the sums are still formed in rank order, in this process) and sends the rank its result. A connection that
 * ends without a goodbye (the process died, kill -9) breaks the group: every rank fails with a message naming the
 * rank whose process is gone.
 *
 * <p>The hub listens until every rank has joined, the joining fails, or nobody joins for {@link #IDLE_MILLIS}.
 * Protocol (DataOutputStream, big-endian): hello = int {@link #HELLO}, UTF key, int rank, int size, long timeout;
 * answer = byte status (0 ok, 1 collective failure + UTF message, 2 bad argument + UTF message). Then requests: byte
 * 1 (collective) + UTF op, byte type, long count, int root, int n, n bytes, answered by status 0 + int n + n bytes or a
 * failure; byte 2 (abort) + UTF reason; byte 3 (close). Unverified beyond one machine's loopback.
 */
final class EmulatedNcclHub implements AutoCloseable {
    static final int HELLO = 0x4c52574e;   // "LRWN"
    static final long IDLE_MILLIS = 10 * 60_000;
    /** How much longer than the group's timeout a remote rank waits for the hub's answer (the hub times out first). */
    static final long ANSWER_MARGIN_MILLIS = 10_000;
    private static final byte OK = 0, FAILED = 1, REFUSED = 2, COLLECTIVE = 1, ABORT = 2, CLOSE = 3;

    private final String key;
    private final ServerSocket server;
    private volatile boolean closed;

    private EmulatedNcclHub(String key, ServerSocket server) {
        this.key = key;
        this.server = server;
    }

    static EmulatedNcclHub start(String key) {
        String host = System.getProperty("longrwkv.emu.hub", "127.0.0.1");
        try {
            ServerSocket s = new ServerSocket();
            s.bind(new InetSocketAddress(InetAddress.getByName(host), 0));
            s.setSoTimeout(1000);
            EmulatedNcclHub hub = new EmulatedNcclHub(key, s);
            Thread t = new Thread(hub::acceptLoop, "emulated-nccl-hub");
            t.setDaemon(true);
            t.start();
            return hub;
        } catch (IOException e) {
            throw new IllegalStateException("the emulated NCCL cannot listen on " + host + " (-Dlongrwkv.emu.hub): " + e.getMessage());
        }
    }

    InetSocketAddress address() { return (InetSocketAddress) server.getLocalSocketAddress(); }

    private void acceptLoop() {
        long idleUntil = System.currentTimeMillis() + IDLE_MILLIS;
        while (!closed) {
            try {
                Socket c = server.accept();
                Thread t = new Thread(() -> serve(c), "emulated-nccl-hub-connection");
                t.setDaemon(true);
                t.start();
            } catch (SocketTimeoutException e) {
                if (System.currentTimeMillis() > idleUntil) {
                    EmulatedNccl.hubClosed(key);
                    close();
                }
            } catch (IOException e) {
                if (!closed) System.err.println("emulated NCCL hub: " + e.getMessage());
                break;
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // nothing to do
        }
    }

    /** One remote rank: its join, then its collectives until it says goodbye or its connection ends. */
    private void serve(Socket socket) {
        int rank = -1;
        EmulatedNccl.LocalMember member = null;
        boolean goodbye = false;
        try (socket;
             DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
             DataOutputStream out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()))) {
            socket.setTcpNoDelay(true);
            if (in.readInt() != HELLO) return;   // not one of ours
            String theirKey = in.readUTF();
            rank = in.readInt();
            int size = in.readInt();
            long timeout = in.readLong();
            if (!theirKey.equals(key)) {
                answer(out, REFUSED, "the hub at " + address() + " serves another communicator id");
                return;
            }
            try {
                member = new EmulatedNccl.LocalMember(EmulatedNccl.joinGroup(key, rank, size, timeout), rank);
            } catch (CollectiveException e) {
                answer(out, FAILED, e.getMessage());
                return;
            } catch (RuntimeException e) {
                answer(out, REFUSED, e.getMessage());
                return;
            }
            answer(out, OK, null);
            while (true) {
                byte request = in.readByte();
                if (request == CLOSE) {
                    goodbye = true;
                    member.close();
                    return;
                }
                if (request == ABORT) {
                    member.abort(in.readUTF());
                    goodbye = true;
                    member.close();
                    return;
                }
                Spec spec = new Spec(in.readUTF(), NcclType.values()[in.readByte()], in.readLong(), in.readInt());
                byte[] send = new byte[in.readInt()];
                in.readFully(send);
                byte[] result;
                try {
                    result = member.collective(spec, send);
                } catch (CollectiveException e) {
                    answer(out, FAILED, e.getMessage());
                    continue;
                } catch (RuntimeException e) {
                    answer(out, REFUSED, e.getMessage());
                    continue;
                }
                out.writeByte(OK);
                out.writeInt(result.length);
                out.write(result);
                out.flush();
            }
        } catch (IOException e) {
            // the connection ended: handled below
        } finally {
            if (member != null && !goodbye) {
                member.abort("its process closed its connection to the emulated NCCL hub without a goodbye (it died or exited: check its output)");
                member.close();
            }
        }
    }

    private static void answer(DataOutputStream out, byte status, String message) throws IOException {
        out.writeByte(status);
        if (status != OK) out.writeUTF(message);
        out.flush();
    }

    /** A rank in a process other than the hub's: every call is a request to the hub. */
    static final class RemoteMember implements EmulatedNccl.Member {
        private final Socket socket;
        private final DataInputStream in;
        private final DataOutputStream out;
        private final InetSocketAddress hub;
        private final int rank, size;
        private final long timeoutMillis;
        private long seq;
        private String broken;
        private boolean closed;

        private RemoteMember(Socket socket, InetSocketAddress hub, int rank, int size, long timeoutMillis) throws IOException {
            this.socket = socket;
            this.hub = hub;
            this.in = new DataInputStream(new BufferedInputStream(socket.getInputStream()));
            this.out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream()));
            this.rank = rank;
            this.size = size;
            this.timeoutMillis = timeoutMillis;
        }

        /** Connects to the hub the id names (retrying until the timeout) and joins; returns when all ranks have. */
        static RemoteMember connect(byte[] id, int rank, int size, long timeoutMillis) {
            InetSocketAddress hub = EmulatedNccl.hubAddress(id);
            long deadline = System.currentTimeMillis() + timeoutMillis;
            Socket socket = null;
            while (socket == null) {
                Socket s = new Socket();
                try {
                    s.connect(hub, (int) Math.max(1, Math.min(1000, deadline - System.currentTimeMillis())));
                    socket = s;
                } catch (IOException e) {
                    try {
                        s.close();
                    } catch (IOException ignored) {
                        // nothing to do
                    }
                    if (System.currentTimeMillis() >= deadline) {
                        throw new CollectiveException("rank " + rank + ": no answer from the emulated NCCL hub at " + hub.getAddress().getHostAddress()
                                + ":" + hub.getPort() + " in " + EmulatedNccl.seconds(timeoutMillis)
                                + " (the process that made the id holds the group: is it running, and has the group not started already?)");
                    }
                    sleep(50);
                }
            }
            try {
                socket.setTcpNoDelay(true);
                RemoteMember m = new RemoteMember(socket, hub, rank, size, timeoutMillis);
                m.out.writeInt(HELLO);
                m.out.writeUTF(EmulatedNccl.key(id));
                m.out.writeInt(rank);
                m.out.writeInt(size);
                m.out.writeLong(timeoutMillis);
                m.out.flush();
                socket.setSoTimeout((int) Math.min(Integer.MAX_VALUE, timeoutMillis + ANSWER_MARGIN_MILLIS));
                m.status("communicator init");
                return m;
            } catch (IOException e) {
                closeQuietly(socket);
                throw new CollectiveException("rank " + rank + ": communicator init: lost the connection to the emulated NCCL hub at " + hub
                        + " (" + e.getMessage() + "): did the process that made the id die?");
            } catch (RuntimeException e) {
                closeQuietly(socket);
                throw e;
            }
        }

        /** Reads an answer's status; throws the hub's failure as it was raised there. */
        private void status(String what) throws IOException {
            byte st = in.readByte();
            if (st == OK) return;
            String message = in.readUTF();
            if (st == REFUSED) throw new IllegalArgumentException(message);
            throw new CollectiveException(message);
        }

        @Override public int rank() { return rank; }
        @Override public int size() { return size; }
        @Override public long nextSeq() { return seq + 1; }
        @Override public synchronized String brokenReason() { return broken; }

        @Override
        public synchronized byte[] collective(Spec spec, byte[] send) {
            if (closed) throw new IllegalStateException("rank " + rank + ": " + spec.op() + " on a closed communicator");
            String what = "rank " + rank + ": " + spec.op() + " #" + (++seq);
            if (broken != null) throw new CollectiveException(what + ": " + broken);
            try {
                out.writeByte(COLLECTIVE);
                out.writeUTF(spec.op());
                out.writeByte(spec.type().ordinal());
                out.writeLong(spec.count());
                out.writeInt(spec.root());
                out.writeInt(send.length);
                out.write(send);
                out.flush();
                try {
                    status(spec.op());
                } catch (CollectiveException e) {
                    broken = e.getMessage();
                    throw e;
                }
                byte[] result = new byte[in.readInt()];
                in.readFully(result);
                return result;
            } catch (SocketTimeoutException e) {
                broken = "the emulated NCCL hub at " + hub + " did not answer in " + EmulatedNccl.seconds(timeoutMillis + ANSWER_MARGIN_MILLIS);
                throw new CollectiveException(what + ": " + broken);
            } catch (IOException e) {
                broken = "lost the connection to the emulated NCCL hub at " + hub + " (" + (e instanceof EOFException ? "closed" : e.getMessage())
                        + "): the process that made the id died or exited (check its output)";
                throw new CollectiveException(what + ": " + broken);
            }
        }

        @Override
        public synchronized void abort(String reason) {
            if (closed) return;
            if (broken == null) broken = "rank " + rank + " failed: " + reason;
            try {
                out.writeByte(ABORT);
                out.writeUTF(reason.length() > 10_000 ? reason.substring(0, 10_000) : reason);
                out.flush();
            } catch (IOException ignored) {
                // the hub is gone: nothing left to tell
            }
            closed = true;
            closeQuietly(socket);
        }

        @Override
        public synchronized void close() {
            if (closed) return;
            closed = true;
            try {
                out.writeByte(CLOSE);
                out.flush();
            } catch (IOException ignored) {
                // the hub is gone
            }
            closeQuietly(socket);
        }

        private static void closeQuietly(Socket s) {
            try {
                s.close();
            } catch (IOException ignored) {
                // nothing to do
            }
        }

        private static void sleep(long ms) {
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CollectiveException("interrupted while connecting to the emulated NCCL hub");
            }
        }
    }
}
