package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

import java.math.BigDecimal;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/**
 * The type converters of every option of every command: what a value must look like, said plainly
 * ("expected an integer from 1 to 2147483647, got 'big'"). picocli puts the option's name in front.
 */
final class Converters {
    private Converters() { }

    static void register(CommandLine cl) {
        ITypeConverter<Integer> i = Converters::toInt;
        ITypeConverter<Long> l = Converters::toLong;
        ITypeConverter<Float> f = Converters::toFloat;
        ITypeConverter<Double> d = Converters::toDouble;
        cl.registerConverter(Integer.class, i).registerConverter(int.class, i)
                .registerConverter(Long.class, l).registerConverter(long.class, l)
                .registerConverter(Float.class, f).registerConverter(float.class, f)
                .registerConverter(Double.class, d).registerConverter(double.class, d)
                .registerConverter(Path.class, Converters::toPath);
    }

    static int toInt(String value) {
        long v = integer(value, "an integer", Integer.MIN_VALUE, Integer.MAX_VALUE);
        return (int) v;
    }

    static long toLong(String value) {
        return integer(value, "an integer", Long.MIN_VALUE, Long.MAX_VALUE);
    }

    private static long integer(String value, String what, long min, long max) {
        String s = value.strip().replace("_", "");
        long v;
        try {
            v = Long.parseLong(s.startsWith("+") ? s.substring(1) : s);
        } catch (NumberFormatException e) {
            // out of the range of a long, or a whole number written like 1e3
            BigDecimal b;
            try {
                b = new BigDecimal(s);
            } catch (NumberFormatException notNumber) {
                throw new TypeConversionException("expected " + what + ", got '" + value + "'");
            }
            if (b.stripTrailingZeros().scale() > 0) {
                throw new TypeConversionException("expected " + what + ", got '" + value + "' (not a whole number)");
            }
            if (b.compareTo(BigDecimal.valueOf(min)) < 0 || b.compareTo(BigDecimal.valueOf(max)) > 0) {
                throw new TypeConversionException("expected " + what + " from " + min + " to " + max + ", got '" + value + "'");
            }
            v = b.longValueExact();
        }
        if (v < min || v > max) throw new TypeConversionException("expected " + what + " from " + min + " to " + max + ", got '" + value + "'");
        return v;
    }

    static float toFloat(String value) {
        double d = toDouble(value);
        if (Math.abs(d) > Float.MAX_VALUE) {
            throw new TypeConversionException("expected a number of at most " + Float.MAX_VALUE + " in magnitude, got '" + value + "'");
        }
        return (float) d;
    }

    static double toDouble(String value) {
        String s = value.strip();
        if (s.matches("(?i)[+-]?(nan|inf|infinity)")) throw new TypeConversionException("expected a finite number, got '" + value + "'");
        double d;
        try {
            if (s.isEmpty() || !s.matches("[+-]?([0-9][0-9_]*\\.?[0-9_]*|\\.[0-9][0-9_]*)([eE][+-]?[0-9]+)?")) throw new NumberFormatException();
            d = Double.parseDouble(s.replace("_", ""));
        } catch (NumberFormatException e) {
            throw new TypeConversionException("expected a number (like 0.5, 3 or 1e-4), got '" + value + "'");
        }
        if (!Double.isFinite(d)) throw new TypeConversionException("expected a finite number, got '" + value + "'");
        return d;
    }

    static Path toPath(String value) {
        if (value.isEmpty()) throw new TypeConversionException("expected a file or directory name, got an empty string");
        try {
            return Path.of(value);
        } catch (InvalidPathException e) {
            throw new TypeConversionException("not a valid path '" + value.replace("\0", "\\0") + "': " + e.getReason());
        }
    }
}
