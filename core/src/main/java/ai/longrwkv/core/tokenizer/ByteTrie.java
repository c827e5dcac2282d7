package ai.longrwkv.core.tokenizer;

import java.util.Arrays;

/**
 * The token byte strings in a double-array trie, and the greedy longest-match walk over it.
 *
 * <p>A trie node is a slot number. The child of node s for byte c is slot t = base[s] + c, and it exists only if
 * check[t] == s. So one step of the walk is two array reads and a compare, with no per-node child lists, maps or
 * objects, and the whole RWKV World vocab lives in three int arrays of about 121k slots (1.5 MB). tokenId[t] is
 * the id of the token that ends at node t, or 0 (end-of-text is never a vocab entry, so 0 is free to mean "none").
 */
final class ByteTrie {
    private static final int ROOT = 0;
    private static final int FREE = -1;

    private final int[] base;
    private final int[] check;
    private final int[] tokenId;

    private ByteTrie(int[] base, int[] check, int[] tokenId) {
        this.base = base;
        this.check = check;
        this.tokenId = tokenId;
    }

    /**
     * Builds the trie. tokens[i] has id ids[i]; the byte strings must be distinct and non-empty, ids must be
     * positive.
     */
    static ByteTrie build(byte[][] tokens, int[] ids) {
        // Sort the token indices by their bytes (unsigned). Then the tokens below any trie node form one contiguous
        // range, ordered by the next byte, and the node's own token (if any) is the first of the range.
        Integer[] order = new Integer[tokens.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Arrays.sort(order, (a, b) -> Arrays.compareUnsigned(tokens[a], tokens[b]));
        byte[][] sorted = new byte[tokens.length][];
        int[] sortedIds = new int[tokens.length];
        for (int i = 0; i < order.length; i++) {
            sorted[i] = tokens[order[i]];
            sortedIds[i] = ids[order[i]];
        }
        return new Builder(sorted, sortedIds).build();
    }

    /**
     * Greedy longest-match tokenization of bytes[from, to): from each position take the longest token that is a
     * prefix of the remaining bytes. Needs every single byte to be a token (checked when the vocab is loaded), so
     * every step advances at least one byte.
     */
    int[] encode(byte[] bytes, int from, int to) {
        final int[] base = this.base, check = this.check, tokenId = this.tokenId;
        int[] out = new int[Math.max(16, (to - from) / 3 + 16)];   // about 3-4 bytes per token for mixed text; grows
        int count = 0;
        int pos = from;
        while (pos < to) {
            int node = ROOT;
            int bestId = 0;
            int bestEnd = pos;
            for (int i = pos; i < to; i++) {
                int next = base[node] + (bytes[i] & 0xff);
                if (check[next] != node) break;
                node = next;
                int id = tokenId[node];
                if (id != 0) {
                    bestId = id;
                    bestEnd = i + 1;
                }
            }
            if (bestId == 0) throw new IllegalStateException("no token for byte 0x" + Integer.toHexString(bytes[pos] & 0xff));
            if (count == out.length) out = Arrays.copyOf(out, count + (count >> 1) + 16);
            out[count++] = bestId;
            pos = bestEnd;
        }
        return count == out.length ? out : Arrays.copyOf(out, count);
    }

    /** The id of exactly these bytes, or 0 if they are not a token. */
    int idOf(byte[] bytes) {
        int node = ROOT;
        for (byte b : bytes) {
            int next = base[node] + (b & 0xff);
            if (check[next] != node) return 0;
            node = next;
        }
        return tokenId[node];
    }

    /** Number of slots (used and free) in the arrays. */
    int slots() {
        return check.length;
    }

    /**
     * Places the nodes depth-first: for each node, find the smallest base such that base + c is a free slot for every
     * child byte c, claim those slots, then place each child's subtree. Most nodes have one child, which goes into the
     * first free slot, so the arrays end up densely filled.
     */
    private static final class Builder {
        private final byte[][] tokens;
        private final int[] ids;
        private int[] base = new int[1024];
        private int[] check = new int[1024];
        private int[] tokenId = new int[1024];
        /** Every slot below this one is taken; the search for a free base starts here. */
        private int firstFree = 1;
        private int highestUsed = 0;

        Builder(byte[][] sortedTokens, int[] ids) {
            this.tokens = sortedTokens;
            this.ids = ids;
            Arrays.fill(check, FREE);
        }

        ByteTrie build() {
            check[ROOT] = Integer.MAX_VALUE;    // taken, and matches no node number
            place(ROOT, 0, tokens.length, 0);
            // Every node's base + 255 must be a valid index, so that the walk needs no bounds test.
            int size = highestUsed + 1;
            for (int s = 0; s < size; s++) {
                if (check[s] != FREE) size = Math.max(size, base[s] + 256);
            }
            ensure(size);
            return new ByteTrie(Arrays.copyOf(base, size), Arrays.copyOf(check, size), Arrays.copyOf(tokenId, size));
        }

        /**
         * Node `node` stands for the common prefix of length `depth` of tokens[lo, hi). Nodes are placed in pre-order
         * (a node's children slots are claimed before its first child's subtree) with an explicit stack, not by
         * recursion: a token of 200,000 bytes is a trie path 200,000 nodes deep.
         */
        private void place(int rootNode, int rootLo, int rootHi, int rootDepth) {
            int[] stack = new int[4 * 64];   // frames of (node, lo, hi, depth)
            int top = 0;
            stack[top++] = rootNode;
            stack[top++] = rootLo;
            stack[top++] = rootHi;
            stack[top++] = rootDepth;
            int[] labels = new int[256];
            int[] starts = new int[257];
            while (top > 0) {
                int depth = stack[--top], hi = stack[--top], lo = stack[--top], node = stack[--top];
                if (lo < hi && tokens[lo].length == depth) {
                    tokenId[node] = ids[lo];
                    lo++;
                }
                if (lo == hi) {
                    base[node] = 0;     // a leaf: slot c of base 0 belongs to the root or is free, never to a leaf's child
                    continue;
                }
                // The distinct next bytes, and where each child's range of tokens starts.
                int children = 0;
                for (int i = lo; i < hi; i++) {
                    int c = tokens[i][depth] & 0xff;
                    if (children == 0 || labels[children - 1] != c) {
                        labels[children] = c;
                        starts[children] = i;
                        children++;
                    }
                }
                starts[children] = hi;
                int b = findBase(labels, children);
                base[node] = b;
                for (int k = 0; k < children; k++) {
                    int slot = b + labels[k];
                    check[slot] = node;
                    highestUsed = Math.max(highestUsed, slot);
                }
                while (firstFree < check.length && check[firstFree] != FREE) firstFree++;
                if (top + 4 * children > stack.length) stack = Arrays.copyOf(stack, Math.max(stack.length * 2, top + 4 * children));
                for (int k = children - 1; k >= 0; k--) {   // pushed last to first, so the first child is placed first
                    stack[top++] = b + labels[k];
                    stack[top++] = starts[k];
                    stack[top++] = starts[k + 1];
                    stack[top++] = depth + 1;
                }
            }
        }

        private int findBase(int[] labels, int children) {
            for (int b = Math.max(1, firstFree - labels[0]); ; b++) {
                ensure(b + 256);
                boolean fits = true;
                for (int k = 0; k < children && fits; k++) fits = check[b + labels[k]] == FREE;
                if (fits) return b;
            }
        }

        private void ensure(int size) {
            if (size <= check.length) return;
            int n = Math.max(size, check.length * 2);
            int old = check.length;
            base = Arrays.copyOf(base, n);
            check = Arrays.copyOf(check, n);
            tokenId = Arrays.copyOf(tokenId, n);
            Arrays.fill(check, old, n, FREE);
        }
    }
}
