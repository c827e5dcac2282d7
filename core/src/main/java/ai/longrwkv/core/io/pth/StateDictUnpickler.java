package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.io.ModelFormatException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A pickle reader that understands exactly what a PyTorch state dict needs and nothing else. A pickle is a program
 * for a small stack machine that may import and call any Python function; here it is treated as data: the only
 * "functions" are a fixed list of torch/collections names, each interpreted by this class (an OrderedDict becomes a
 * {@link Dict}, {@code _rebuild_tensor_v2} becomes a {@link TensorRef}), and any other global or opcode is refused
 * with a ModelFormatException that names the file and what was found. Nothing in a checkpoint is ever executed.
 *
 * <p>Supported: the protocol 2 opcodes torch.save writes, plus the few protocol 3-4 ones Python writes for the same
 * objects (SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE, FRAME), so files saved with pickle_protocol=4 load too.
 * The machine is iterative (no recursion), and the stack, the memo and the number of objects are bounded, so a
 * hostile pickle can neither overflow the Java stack nor exhaust memory.
 */
final class StateDictUnpickler {
    /** The Python names a state dict may use. */
    enum TorchGlobal {
        ORDERED_DICT("collections", "OrderedDict"),
        REBUILD_TENSOR_V2("torch._utils", "_rebuild_tensor_v2"),
        REBUILD_PARAMETER("torch._utils", "_rebuild_parameter"),
        REBUILD_PARAMETER_WITH_STATE("torch._utils", "_rebuild_parameter_with_state"),
        BFLOAT16_STORAGE("torch", StorageType.BF16.torchClass),
        HALF_STORAGE("torch", StorageType.F16.torchClass),
        FLOAT_STORAGE("torch", StorageType.F32.torchClass);

        final String module;
        final String name;

        TorchGlobal(String module, String name) {
            this.module = module;
            this.name = name;
        }

        static TorchGlobal find(String module, String name) {
            for (TorchGlobal g : values()) {
                if (g.module.equals(module) && g.name.equals(name)) return g;
            }
            return null;
        }

        @Override public String toString() { return module + "." + name; }
    }

    /** A Python tuple. Equality is identity: value equality is never needed, and hashing nested tuples would recurse. */
    static final class Tuple {
        final List<Object> items;
        Tuple(List<Object> items) { this.items = items; }
    }

    /** A Python list. */
    static final class PyList {
        final List<Object> items = new ArrayList<>();
    }

    /** A Python dict or OrderedDict; insertion order is kept, as in Python. */
    static final class Dict {
        final LinkedHashMap<Object, Object> items = new LinkedHashMap<>();
    }

    /** Python's None (null cannot live in the Java collections used here). */
    static final Object NONE = new Object() {
        @Override public String toString() { return "None"; }
    };

    /** A storage named by a persistent id: its bytes are the zip record {@code data/<key>}. */
    record StorageRef(String key, StorageType type, long numel, String location) {}

    /** What _rebuild_tensor_v2 describes: a strided view of a storage. Numbers are checked later by PthReader. */
    record TensorRef(StorageRef storage, long storageOffset, long[] size, long[] stride) {}

    private static final int MAX_STACK = 1 << 20;
    private static final int MAX_MEMO = 1 << 20;
    private static final int MAX_OBJECTS = 8 << 20;
    private static final int MAX_GLOBAL_NAME = 256;

    private final ByteBuffer in;
    private final String where;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private final Map<String, StorageRef> storages = new HashMap<>();
    private int objects;
    private int opcodeStart;

    private StateDictUnpickler(byte[] pickle, String where) {
        this.in = ByteBuffer.wrap(pickle).order(ByteOrder.LITTLE_ENDIAN);
        this.where = where;
    }

    /**
     * Runs the pickle and returns its result: a {@link Dict}, {@link TensorRef}, String, Long, ... as built.
     *
     * @param where file and record name for error messages, e.g. "model.pth: archive/data.pkl"
     */
    static Object load(byte[] pickle, String where) {
        return new StateDictUnpickler(pickle, where).run();
    }

    private Object run() {
        while (true) {
            if (!in.hasRemaining()) throw error("the pickle ends without a STOP opcode (truncated)");
            opcodeStart = in.position();
            int op = in.get() & 0xff;
            switch (op) {
                case 0x80 -> { // PROTO
                    int version = u8();
                    if (version < 2 || version > 5) throw error("pickle protocol " + version + " is not supported (torch.save writes 2)");
                }
                case 0x95 -> bytes(8); // FRAME: a length hint for buffered readers; the data follows inline
                case '(' -> { // MARK
                    marks.add(stack.size());
                }
                case '.' -> { // STOP
                    Object result = pop();
                    if (!stack.isEmpty() || !marks.isEmpty()) throw error("the pickle stops with values left on its stack");
                    return result;
                }
                case 'N' -> push(NONE);
                case 0x88 -> push(Boolean.TRUE);  // NEWTRUE
                case 0x89 -> push(Boolean.FALSE); // NEWFALSE
                case 'K' -> push((long) u8());      // BININT1
                case 'M' -> push((long) (in.position() + 2 <= in.limit() ? in.getShort() & 0xffff : truncated())); // BININT2
                case 'J' -> push((long) (in.position() + 4 <= in.limit() ? in.getInt() : truncated())); // BININT
                case 0x8a -> push(long1());         // LONG1
                case 'G' -> push(ByteBuffer.wrap(bytes(8)).getDouble()); // BINFLOAT, big-endian
                case 'X' -> push(string(in.position() + 4 <= in.limit() ? in.getInt() & 0xffffffffL : truncated())); // BINUNICODE
                case 0x8c -> push(string(u8()));    // SHORT_BINUNICODE
                case 0x8d -> push(string(in.position() + 8 <= in.limit() ? in.getLong() : truncated())); // BINUNICODE8
                case ')' -> push(new Tuple(List.of())); // EMPTY_TUPLE
                case 't' -> push(new Tuple(popToMark())); // TUPLE
                case 0x85 -> push(tupleOfLast(1));  // TUPLE1
                case 0x86 -> push(tupleOfLast(2));  // TUPLE2
                case 0x87 -> push(tupleOfLast(3));  // TUPLE3
                case ']' -> push(new PyList());     // EMPTY_LIST
                case 'a' -> { // APPEND
                    Object v = pop();
                    list(peek()).items.add(v);
                }
                case 'e' -> { // APPENDS
                    List<Object> vs = popToMark();
                    list(peek()).items.addAll(vs);
                }
                case '}' -> push(new Dict());       // EMPTY_DICT
                case 's' -> { // SETITEM
                    Object v = pop();
                    Object k = pop();
                    dict(peek()).items.put(k, v);
                }
                case 'u' -> { // SETITEMS
                    List<Object> kv = popToMark();
                    if (kv.size() % 2 != 0) throw error("SETITEMS with an odd number of values");
                    Dict d = dict(peek());
                    for (int i = 0; i < kv.size(); i += 2) d.items.put(kv.get(i), kv.get(i + 1));
                }
                case 'c' -> push(global(line(), line())); // GLOBAL
                case 0x93 -> { // STACK_GLOBAL
                    Object name = pop();
                    Object module = pop();
                    if (!(module instanceof String m) || !(name instanceof String n)) {
                        throw error("STACK_GLOBAL needs two strings, found " + describe(module) + " and " + describe(name));
                    }
                    push(global(m, n));
                }
                case 'R' -> { // REDUCE
                    Object args = pop();
                    Object callable = pop();
                    push(reduce(callable, args));
                }
                case 'b' -> { // BUILD
                    Object state = pop();
                    Object target = peek();
                    // OrderedDict state dicts carry an attribute dict ({'_metadata': module versions}); it is not needed
                    if (!(target instanceof Dict)) {
                        throw error("BUILD (set the state of an object) on " + describe(target) + " with " + describe(state)
                                + "; only dict attributes are expected in a state dict");
                    }
                }
                case 'Q' -> push(persistentLoad(pop())); // BINPERSID
                case 'h' -> push(memoGet(u8()));        // BINGET
                case 'j' -> push(memoGet(u32()));       // LONG_BINGET
                case 'q' -> memoPut(u8());              // BINPUT
                case 'r' -> memoPut(u32());             // LONG_BINPUT
                case 0x94 -> memoPut(memo.size());      // MEMOIZE
                default -> throw error(String.format("unsupported pickle opcode 0x%02x%s; a state dict of tensors needs only the "
                        + "protocol 2 opcodes torch.save writes", op, op >= 0x20 && op < 0x7f ? " ('" + (char) op + "')" : ""));
            }
        }
    }

    private Object global(String module, String name) {
        TorchGlobal g = TorchGlobal.find(module, name);
        if (g != null) return g;
        String what = printable(module + "." + name);
        if (module.equals("torch") && name.endsWith("Storage")) {
            throw error("tensor storage type " + what + " is not supported; only torch.BFloat16Storage, torch.HalfStorage "
                    + "and torch.FloatStorage (bf16, fp16, fp32 tensors) can be read");
        }
        throw error("refusing pickle global '" + what + "': a checkpoint may only reference collections.OrderedDict, "
                + "torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the bf16/fp16/fp32 storage types; "
                + "nothing in a checkpoint is executed");
    }

    private Object reduce(Object callable, Object argsObject) {
        if (!(callable instanceof TorchGlobal g)) throw error("REDUCE calls " + describe(callable) + ", which is not callable here");
        if (!(argsObject instanceof Tuple t)) throw error("REDUCE with arguments " + describe(argsObject) + " instead of a tuple");
        List<Object> args = t.items;
        switch (g) {
            case ORDERED_DICT -> {
                if (!args.isEmpty()) throw error("collections.OrderedDict called with " + args.size() + " arguments; expected ()");
                return new Dict();
            }
            case REBUILD_TENSOR_V2 -> {
                // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
                if (args.size() != 6 && args.size() != 7) {
                    throw error("torch._utils._rebuild_tensor_v2 called with " + args.size() + " arguments; expected 6 or 7");
                }
                if (!(args.get(0) instanceof StorageRef storage)) {
                    throw error("_rebuild_tensor_v2: first argument is " + describe(args.get(0)) + ", expected a storage");
                }
                long offset = integer(args.get(1), "storage_offset");
                long[] size = integers(args.get(2), "size");
                long[] stride = integers(args.get(3), "stride");
                if (size.length != stride.length) {
                    throw error("_rebuild_tensor_v2: size has " + size.length + " dimensions but stride has " + stride.length);
                }
                return new TensorRef(storage, offset, size, stride);
            }
            case REBUILD_PARAMETER, REBUILD_PARAMETER_WITH_STATE -> {
                // (data, requires_grad, backward_hooks[, state]): a Parameter is its data for our purposes
                int expected = g == TorchGlobal.REBUILD_PARAMETER ? 3 : 4;
                if (args.size() != expected || !(args.get(0) instanceof TensorRef)) {
                    throw error(g + " called with " + args.size() + " arguments starting with "
                            + (args.isEmpty() ? "nothing" : describe(args.get(0))) + "; expected " + expected + ", starting with a tensor");
                }
                return args.get(0);
            }
            default -> throw error(g + " is a storage type; it cannot be called");
        }
    }

    /** torch.save's persistent ids: ('storage', torch.XStorage, key, location, numel). */
    private StorageRef persistentLoad(Object pidObject) {
        if (!(pidObject instanceof Tuple pid) || pid.items.size() != 5 || !"storage".equals(pid.items.get(0))) {
            throw error("persistent id " + describe(pidObject) + " is not ('storage', type, key, location, numel)");
        }
        Object typeObject = pid.items.get(1);
        StorageType type = typeObject == TorchGlobal.BFLOAT16_STORAGE ? StorageType.BF16
                : typeObject == TorchGlobal.HALF_STORAGE ? StorageType.F16
                : typeObject == TorchGlobal.FLOAT_STORAGE ? StorageType.F32 : null;
        if (type == null) throw error("persistent id names storage type " + describe(typeObject) + ", expected a torch storage class");
        if (!(pid.items.get(2) instanceof String key) || !(pid.items.get(3) instanceof String location)) {
            throw error("persistent id: storage key and location must be strings");
        }
        long numel = integer(pid.items.get(4), "storage size");
        StorageRef ref = new StorageRef(key, type, numel, location);
        StorageRef earlier = storages.putIfAbsent(key, ref);
        if (earlier == null) return ref;
        if (earlier.type != type || earlier.numel != numel) {
            throw error("storage '" + key + "' is declared twice, as " + earlier.type + " x " + earlier.numel + " and as "
                    + type + " x " + numel);
        }
        return earlier;
    }

    private long integer(Object o, String what) {
        if (o instanceof Long v) return v;
        throw error("_rebuild_tensor_v2: " + what + " is " + describe(o) + ", expected an integer");
    }

    private long[] integers(Object o, String what) {
        if (!(o instanceof Tuple t)) throw error("_rebuild_tensor_v2: " + what + " is " + describe(o) + ", expected a tuple of integers");
        long[] out = new long[t.items.size()];
        for (int i = 0; i < out.length; i++) out[i] = integer(t.items.get(i), what + "[" + i + "]");
        return out;
    }

    private Tuple tupleOfLast(int n) {
        if (stack.size() - n < currentMarkFloor()) throw error("tuple of " + n + " needs " + n + " values on the stack");
        List<Object> top = stack.subList(stack.size() - n, stack.size());
        Tuple t = new Tuple(new ArrayList<>(top));
        top.clear();
        return t;
    }

    private List<Object> popToMark() {
        if (marks.isEmpty()) throw error("opcode needs a MARK but none is set");
        int m = marks.remove(marks.size() - 1);
        List<Object> top = stack.subList(m, stack.size());
        List<Object> out = new ArrayList<>(top);
        top.clear();
        return out;
    }

    private int currentMarkFloor() {
        return marks.isEmpty() ? 0 : marks.get(marks.size() - 1);
    }

    private void push(Object o) {
        if (stack.size() >= MAX_STACK) throw error("the pickle stack exceeds " + MAX_STACK + " values; corrupt or hostile file");
        if (++objects > MAX_OBJECTS) throw error("the pickle builds more than " + MAX_OBJECTS + " values; corrupt or hostile file");
        stack.add(o);
    }

    private Object pop() {
        if (stack.size() <= currentMarkFloor()) throw error("stack underflow (the pickle is corrupt)");
        return stack.remove(stack.size() - 1);
    }

    private Object peek() {
        if (stack.size() <= currentMarkFloor()) throw error("stack underflow (the pickle is corrupt)");
        return stack.get(stack.size() - 1);
    }

    private Object memoGet(long index) {
        Object o = memo.get(index);
        if (o == null) throw error("memo entry " + index + " is read before it was written");
        return o;
    }

    private void memoPut(long index) {
        if (memo.size() >= MAX_MEMO && !memo.containsKey(index)) {
            throw error("the pickle memo exceeds " + MAX_MEMO + " entries; corrupt or hostile file");
        }
        memo.put(index, peek());
    }

    private PyList list(Object o) {
        if (o instanceof PyList l) return l;
        throw error("APPEND on " + describe(o) + ", expected a list");
    }

    private Dict dict(Object o) {
        if (o instanceof Dict d) return d;
        throw error("SETITEM on " + describe(o) + ", expected a dict");
    }

    private int u8() {
        if (!in.hasRemaining()) truncated();
        return in.get() & 0xff;
    }

    private long u32() {
        if (in.remaining() < 4) truncated();
        return in.getInt() & 0xffffffffL;
    }

    /** LONG1: a little-endian two's-complement integer of n bytes; more than 8 bytes is never needed for sizes. */
    private long long1() {
        int n = u8();
        if (n > 8) throw error("integer of " + n + " bytes is too large for a tensor size or offset");
        byte[] b = bytes(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) v = (v << 8) | (b[i] & 0xff);
        if (n > 0 && n < 8 && (b[n - 1] & 0x80) != 0) v -= 1L << (8 * n); // sign-extend
        return v;
    }

    private byte[] bytes(long n) {
        if (n < 0 || n > in.remaining()) truncated();
        byte[] b = new byte[(int) n];
        in.get(b);
        return b;
    }

    private String string(long length) {
        return new String(bytes(length), StandardCharsets.UTF_8);
    }

    /** A newline-terminated ASCII line (the GLOBAL opcode's module and name). */
    private String line() {
        StringBuilder sb = new StringBuilder();
        while (true) {
            if (!in.hasRemaining()) truncated();
            byte b = in.get();
            if (b == '\n') return sb.toString();
            if (sb.length() >= MAX_GLOBAL_NAME) throw error("GLOBAL name longer than " + MAX_GLOBAL_NAME + " characters");
            sb.append((char) (b & 0xff));
        }
    }

    private int truncated() {
        throw error("the pickle ends in the middle of an opcode (truncated)");
    }

    /** A short description of a value's type, never its (possibly huge or cyclic) contents. */
    static String describe(Object o) {
        if (o == null) return "nothing";
        if (o instanceof String s) return "the string '" + printable(s.length() > 40 ? s.substring(0, 40) + "..." : s) + "'";
        if (o instanceof Long || o instanceof Boolean || o instanceof Double || o == NONE) return String.valueOf(o);
        if (o instanceof Tuple t) return "a tuple of " + t.items.size();
        if (o instanceof PyList) return "a list";
        if (o instanceof Dict) return "a dict";
        if (o instanceof TorchGlobal g) return g.toString();
        if (o instanceof StorageRef) return "a storage";
        if (o instanceof TensorRef) return "a tensor";
        return o.getClass().getSimpleName();
    }

    /** Text from the file with control characters escaped, so that an error message cannot carry terminal escapes. */
    static String printable(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isISOControl(c)) sb.append(String.format("\\x%02x", (int) c));
            else sb.append(c);
        }
        return sb.toString();
    }

    private ModelFormatException error(String message) {
        return new ModelFormatException(where + ": " + message + " (pickle byte " + opcodeStart + ")");
    }
}
