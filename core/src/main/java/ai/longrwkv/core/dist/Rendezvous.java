package ai.longrwkv.core.dist;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * How the nodes of a multi-machine run find each other before NCCL can (torchrun's job): node 0 listens on the
 * master port; every other node connects to {@code --master ADDR:PORT} (retrying until the timeout, so the nodes may
 * start in any order) and says who it is: its node rank, the node count it was given, how many ranks (GPUs) it runs
 * and a fingerprint of its run (the command's model, data and options, as the trainer writes it). When all nodes
 * are in, node 0 checks that they agree and answers every node at once: the communicator id (ncclGetUniqueId's bytes,
 * made by node 0), the world size and each node's first global rank (nodes in node-rank order, each with its ranks
 * consecutive), or the same error to all of them. So a node either learns the group or fails with a message that
 * names both nodes' values; none is left waiting.
 *
 * <p>Plain Java sockets, one connection per node, closed before NCCL starts. Protocol (DataOutputStream,
 * big-endian): hello = int {@link #MAGIC}, int version, int node, int nnodes, int local ranks, string fingerprint;
 * answer = byte 0 + int world size, int first rank, int id length, the id, string fingerprint; or byte 1 (the nodes
 * disagree) or 2 (not every node connected in time) + string error (strings: int length + UTF-8).
 */
public final class Rendezvous {
    static final int MAGIC = 0x4c525752;   // "LRWR"
    static final int VERSION = 1;
    /** How much longer than its own timeout a node waits for node 0's answer once connected (node 0 times out first). */
    static final long ANSWER_MARGIN_MILLIS = 10_000;
    private static final byte OK = 0, DISAGREE = 1, TIMED_OUT = 2;

    private Rendezvous() { }

    /** What a node learns: the communicator id, the world size, its first global rank, and the run's fingerprint. */
    public record Group(byte[] id, int worldSize, int firstRank, String fingerprint) { }

    /** {@code ADDR:PORT} (a host name, IPv4, or [IPv6]) as a socket address, or one clear error naming the option. */
    public static InetSocketAddress parseMaster(String master) {
        String bad = "--master must be ADDR:PORT (the address of node 0 and a free TCP port, e.g. 10.0.0.1:29500), got '" + master + "'";
        if (master == null) throw new IllegalArgumentException(bad);
        int colon = master.lastIndexOf(':');
        if (colon <= 0 || colon == master.length() - 1) throw new IllegalArgumentException(bad);
        String host = master.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) host = host.substring(1, host.length() - 1);
        int port;
        try {
            port = Integer.parseInt(master.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(bad);
        }
        if (port < 1 || port > 65535) throw new IllegalArgumentException(bad);
        return InetSocketAddress.createUnresolved(host, port);
    }

    static String seconds(long millis) {
        return millis % 1000 == 0 ? (millis / 1000) + " s" : String.format(Locale.ROOT, "%.1f s", millis / 1000.0);
    }

    /** Node 0's side, bound when made (port 0: any free port, for tests), served once by {@link #serve}. */
    public static final class Master implements AutoCloseable {
        private final ServerSocket server;

        private Master(ServerSocket server) { this.server = server; }

        /** The port node 0 listens on (the one asked for, or the one the system chose for port 0). */
        public int port() { return server.getLocalPort(); }

        /**
         * Waits until the other {@code nnodes - 1} nodes have connected, checks that they agree with this node (node
         * count, fingerprint, distinct node ranks), and sends each the group; returns node 0's view of it. Throws
         * {@link CollectiveException} when not every node connected within {@code timeoutMillis}, and
         * {@link IllegalArgumentException} when the nodes disagree; the other nodes get the same message.
         */
        public Group serve(int nnodes, int localRanks, byte[] id, String fingerprint, long timeoutMillis) {
            if (nnodes < 1) throw new IllegalArgumentException("--nnodes must be at least 1, got " + nnodes);
            if (localRanks < 1) throw new IllegalArgumentException("node 0 must run at least one rank, got " + localRanks);
            List<Node> nodes = new ArrayList<>();
            long deadline = System.currentTimeMillis() + timeoutMillis;
            try {
                while (nodes.size() < nnodes - 1) {
                    long left = deadline - System.currentTimeMillis();
                    if (left <= 0) {
                        String msg = "node 0: " + missing(nodes, nnodes) + " connect to the master port " + port() + " in "
                                + seconds(timeoutMillis) + " (" + (nodes.size() + 1) + " of " + nnodes + " nodes did, node 0 included): "
                                + "is it started, with --master pointing at this machine, and is the port open?";
                        refuseAll(nodes, TIMED_OUT, msg);
                        throw new CollectiveException(msg);
                    }
                    server.setSoTimeout((int) Math.min(left, Integer.MAX_VALUE));
                    Socket s;
                    try {
                        s = server.accept();
                    } catch (SocketTimeoutException e) {
                        continue;
                    }
                    Node n = hello(s, left);
                    if (n != null) nodes.add(n);
                }
                String problem = disagreement(nodes, nnodes, fingerprint);
                if (problem != null) {
                    refuseAll(nodes, DISAGREE, problem);
                    throw new IllegalArgumentException("node 0: " + problem);
                }
                int[] first = new int[nnodes];
                int world = localRanks;
                nodes.sort((a, b) -> Integer.compare(a.node, b.node));
                for (Node n : nodes) {
                    first[n.node] = world;
                    world += n.localRanks;
                }
                for (Node n : nodes) {
                    try {
                        n.out.writeByte(OK);
                        n.out.writeInt(world);
                        n.out.writeInt(first[n.node]);
                        n.out.writeInt(id.length);
                        n.out.write(id);
                        writeString(n.out, fingerprint);
                        n.out.flush();
                    } catch (IOException e) {
                        throw new CollectiveException("node 0: node " + n.node + " (" + n.address + ") dropped its connection before it got the group: "
                                + e.getMessage() + " (check its output)");
                    }
                }
                return new Group(id.clone(), world, 0, fingerprint);
            } catch (IOException e) {
                throw new CollectiveException("node 0: the master port " + port() + " failed: " + e.getMessage());
            } finally {
                for (Node n : nodes) n.close();
                close();
            }
        }

        /** "node 2 did not", "nodes 1, 3 did not" (the node ranks that did not say hello), for the timeout message. */
        private static String missing(List<Node> nodes, int nnodes) {
            boolean[] in = new boolean[nnodes];
            for (Node n : nodes) if (n.node >= 0 && n.node < nnodes) in[n.node] = true;
            List<String> out = new ArrayList<>();
            for (int r = 1; r < nnodes; r++) if (!in[r]) out.add(Integer.toString(r));
            if (out.isEmpty()) return "a node started with a wrong --node-rank did not";   // a duplicate took a missing node's place
            return (out.size() == 1 ? "node " + out.get(0) : "nodes " + String.join(", ", out)) + " did not";
        }

        /** Null when every node agrees with node 0, else what differs, naming both nodes' values. */
        private static String disagreement(List<Node> nodes, int nnodes, String fingerprint) {
            boolean[] seen = new boolean[nnodes];
            for (Node n : nodes) {
                if (n.nnodes != nnodes) {
                    return "node " + n.node + " (" + n.address + ") was started with --nnodes " + n.nnodes + ", node 0 with --nnodes " + nnodes;
                }
                if (n.node < 1 || n.node >= nnodes) {
                    return "a node (" + n.address + ") was started with --node-rank " + n.node + ", outside 1.." + (nnodes - 1)
                            + " (node 0 is the master)";
                }
                if (seen[n.node]) return "two nodes were started with --node-rank " + n.node + " (each node needs its own)";
                seen[n.node] = true;
                if (n.localRanks < 1) return "node " + n.node + " runs no rank";
                if (!n.fingerprint.equals(fingerprint)) {
                    return "node " + n.node + "'s run differs from node 0's: node 0 has '" + fingerprint + "', node " + n.node + " has '"
                            + n.fingerprint + "' (every node must run the same command with the same model, data and options)";
                }
            }
            return null;
        }

        private static void refuseAll(List<Node> nodes, byte status, String message) {
            for (Node n : nodes) {
                try {
                    n.out.writeByte(status);
                    writeString(n.out, message);
                    n.out.flush();
                } catch (IOException ignored) {
                    // that node is gone already
                }
            }
        }

        /** Reads a node's hello (null for a connection that is not a node of ours: a port scanner, a health check). */
        private static Node hello(Socket s, long timeoutMillis) {
            try {
                s.setSoTimeout((int) Math.max(1000, Math.min(timeoutMillis, 30_000)));
                DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
                DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
                if (in.readInt() != MAGIC || in.readInt() != VERSION) {
                    s.close();
                    return null;
                }
                int node = in.readInt(), nnodes = in.readInt(), localRanks = in.readInt();
                String fp = readString(in);
                return new Node(s, in, out, node, nnodes, localRanks, fp, s.getRemoteSocketAddress().toString());
            } catch (IOException e) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // nothing to do
                }
                return null;
            }
        }

        @Override
        public void close() {
            try {
                server.close();
            } catch (IOException ignored) {
                // nothing to do
            }
        }
    }

    private record Node(Socket socket, DataInputStream in, DataOutputStream out, int node, int nnodes, int localRanks,
                        String fingerprint, String address) {
        void close() {
            try {
                socket.close();
            } catch (IOException ignored) {
                // nothing to do
            }
        }
    }

    /**
     * Node 0 listens on {@code port} on every interface (0: any free port). Throws {@link IllegalArgumentException}
     * when the port is taken.
     */
    public static Master listen(int port) {
        try {
            ServerSocket s = new ServerSocket();
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(port));
            return new Master(s);
        } catch (IOException e) {
            throw new IllegalArgumentException("node 0 cannot listen on the master port " + port + ": " + e.getMessage()
                    + " (is another run using it? pick another port in --master)");
        }
    }

    /**
     * Node {@code node} (1 .. nnodes-1): connects to the master (retrying until {@code timeoutMillis}), says who it is
     * and waits for the group. Throws {@link CollectiveException} when node 0 does not answer in time, and
     * {@link IllegalArgumentException} when the nodes disagree (node 0's message, naming both values).
     */
    public static Group join(String master, int node, int nnodes, int localRanks, String fingerprint, long timeoutMillis) {
        InetSocketAddress addr = parseMaster(master);
        if (node < 1 || node >= nnodes) throw new IllegalArgumentException("--node-rank must be in 1.." + (nnodes - 1) + " on the other nodes, got " + node);
        String noAnswer = "node " + node + ": no answer from the master " + master + " in " + seconds(timeoutMillis)
                + ": is node 0 running and the port open?";
        long deadline = System.currentTimeMillis() + timeoutMillis;
        Socket socket = null;
        while (socket == null) {
            Socket s = new Socket();
            try {
                InetSocketAddress resolved = new InetSocketAddress(addr.getHostString(), addr.getPort());
                if (resolved.isUnresolved()) throw new IOException("unknown host " + addr.getHostString());
                s.connect(resolved, (int) Math.max(1, Math.min(2000, deadline - System.currentTimeMillis())));
                socket = s;
            } catch (IOException e) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // nothing to do
                }
                if (System.currentTimeMillis() >= deadline) throw new CollectiveException(noAnswer + " (" + e.getMessage() + ")");
                try {
                    Thread.sleep(200);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new CollectiveException("node " + node + ": interrupted while connecting to the master " + master);
                }
            }
        }
        try (Socket s = socket) {
            s.setSoTimeout((int) Math.min(Integer.MAX_VALUE, timeoutMillis + ANSWER_MARGIN_MILLIS));
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream()));
            DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
            out.writeInt(MAGIC);
            out.writeInt(VERSION);
            out.writeInt(node);
            out.writeInt(nnodes);
            out.writeInt(localRanks);
            writeString(out, fingerprint);
            out.flush();
            byte status = in.readByte();
            if (status != OK) {
                String message = readString(in);
                if (status == TIMED_OUT) throw new CollectiveException("node " + node + ": the master gave up: " + message);
                throw new IllegalArgumentException("node " + node + ": " + message);
            }
            int world = in.readInt(), first = in.readInt();
            byte[] id = new byte[in.readInt()];
            in.readFully(id);
            String fp = readString(in);
            return new Group(id, world, first, fp);
        } catch (SocketTimeoutException e) {
            throw new CollectiveException("node " + node + ": connected to the master " + master + ", but it did not answer in "
                    + seconds(timeoutMillis + ANSWER_MARGIN_MILLIS) + " (is node 0 stuck? check its output)");
        } catch (IOException e) {
            throw new CollectiveException("node " + node + ": lost the connection to the master " + master + " (" + e.getMessage()
                    + "): did node 0 fail? check its output");
        }
    }

    private static void writeString(DataOutputStream out, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        out.writeInt(b.length);
        out.write(b);
    }

    private static String readString(DataInputStream in) throws IOException {
        int n = in.readInt();
        if (n < 0 || n > (16 << 20)) throw new IOException("a string of " + n + " bytes");
        byte[] b = new byte[n];
        in.readFully(b);
        return new String(b, StandardCharsets.UTF_8);
    }
}
