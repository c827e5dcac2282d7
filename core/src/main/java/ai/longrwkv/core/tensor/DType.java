package ai.longrwkv.core.tensor;

import java.util.Locale;

/**
 * Element type of a backend tensor. Which ops take which dtype is the {@link ai.longrwkv.core.backend.Backend}'s
 * contract; where the model keeps which tensors in bf16, and why the rest stays fp32, is written down once in
 * {@link ai.longrwkv.core.model.Precision}.
 */
public enum DType {
    /** IEEE float32. */
    F32(4),
    /** bfloat16: the top 16 bits of a float32 (8 exponent bits, 7 mantissa bits), rounded to nearest even. */
    BF16(2);

    private final int bytes;

    DType(int bytes) { this.bytes = bytes; }

    /** Bytes per element. */
    public int bytes() { return bytes; }

    /** The name users type and messages print: fp32, bf16. */
    public String label() { return this == F32 ? "fp32" : "bf16"; }

    /** Parses fp32/float32/f32 and bf16/bfloat16 (any case). */
    public static DType parse(String s) {
        switch (s.toLowerCase(Locale.ROOT)) {
            case "fp32", "f32", "float32", "float" -> { return F32; }
            case "bf16", "bfloat16" -> { return BF16; }
            default -> throw new IllegalArgumentException("unknown dtype '" + s + "': expected fp32 or bf16");
        }
    }

    /** {@link #parse} for a command-line option: the error names the option ("--precision must be fp32 or bf16, got 'x'"). */
    public static DType parseOption(String option, String value) {
        try {
            return parse(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(option + " must be fp32 or bf16, got '" + value + "'");
        }
    }

    @Override
    public String toString() { return label(); }
}
