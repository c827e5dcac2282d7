package ai.longrwkv.core.io.pth;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Emits pickle protocol 2 opcodes, the subset torch.save itself uses for a state dict, so that both torch.load and
 * torch.load(weights_only=True) (which accepts only a fixed set of opcodes and globals) read the result.
 * No memo is written: nothing is shared, and unpicklers do not need one.
 */
final class PickleWriter {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    PickleWriter proto2() { return op(0x80).op(2); }
    PickleWriter mark() { return op('('); }
    PickleWriter stop() { return op('.'); }
    PickleWriter emptyTuple() { return op(')'); }
    PickleWriter tupleFromMark() { return op('t'); }
    PickleWriter reduce() { return op('R'); }
    PickleWriter setItems() { return op('u'); }
    PickleWriter binPersId() { return op('Q'); }
    PickleWriter bool(boolean v) { return op(v ? 0x88 : 0x89); }

    /** GLOBAL: pushes module.name (protocol 0-2 form, two newline-terminated lines). */
    PickleWriter global(String module, String name) {
        op('c');
        byte[] b = (module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII);
        out.write(b, 0, b.length);
        return this;
    }

    /** BINUNICODE: 4-byte little-endian length, then UTF-8. */
    PickleWriter string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        op('X');
        int32(b.length);
        out.write(b, 0, b.length);
        return this;
    }

    /** The shortest of BININT1, BININT2, BININT, LONG1, as Python's pickler chooses. */
    PickleWriter integer(long v) {
        if (v >= 0 && v <= 0xff) return op('K').op((int) v);
        if (v >= 0 && v <= 0xffff) return op('M').op((int) (v & 0xff)).op((int) (v >>> 8));
        if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            op('J');
            int32((int) v);
            return this;
        }
        // LONG1: little-endian two's complement in as few bytes as keep the sign
        int n = 8;
        while (n > 1 && (v >> (8 * (n - 1) - 1)) == (v >> 63)) n--;
        op(0x8a).op(n);
        for (int i = 0; i < n; i++) op((int) (v >>> (8 * i)) & 0xff);
        return this;
    }

    /** A tuple of integers (a shape or a stride). */
    PickleWriter integerTuple(long[] values) {
        switch (values.length) {
            case 0 -> emptyTuple();
            case 1, 2, 3 -> {
                for (long v : values) integer(v);
                op(0x84 + values.length); // TUPLE1, TUPLE2, TUPLE3
            }
            default -> {
                mark();
                for (long v : values) integer(v);
                tupleFromMark();
            }
        }
        return this;
    }

    byte[] toByteArray() { return out.toByteArray(); }

    private PickleWriter op(int b) {
        out.write(b);
        return this;
    }

    private void int32(int v) {
        for (int i = 0; i < 4; i++) out.write((v >>> (8 * i)) & 0xff);
    }
}
