package ai.longrwkv.core.io;

import ai.longrwkv.core.io.pth.PthReader;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Map;

/**
 * Loads a model file of any supported format, chosen by its first bytes rather than its name, and refuses models
 * that are not RWKV-5.2 (x052).
 */
public final class ModelFiles {
    /** What the first bytes of a file say it is. */
    public enum Format { RWKV_CPP, PYTORCH_ZIP, SAFETENSORS, UNKNOWN }

    private ModelFiles() {}

    /** Reads the model and checks that it is an x052 model (ModelConfig.checkArchitecture). */
    public static ModelWeights load(Path file) {
        Format format = detectFormat(file);
        ModelWeights weights = switch (format) {
            case RWKV_CPP -> RwkvCppModelReader.read(file);
            case SAFETENSORS -> Safetensors.readModel(file);
            case PYTORCH_ZIP -> PthReader.read(file);
            case UNKNOWN -> throw new ModelFormatException(file + ": unrecognised model format (first bytes " + firstBytesHex(file)
                    + "); expected an rwkv.cpp .bin (starts with 66 6d 67 67), a PyTorch .pth zip (starts with 50 4b 03 04) "
                    + "or a .safetensors file (8-byte header length, then '{')");
        };
        ModelConfig.checkArchitecture(weights);
        return weights;
    }

    /** What an output file's name asks for. */
    public enum OutputFormat { PTH, SAFETENSORS }

    /**
     * The format an output file's extension names: .pth or .pt is a PyTorch zip, .safetensors is safetensors.
     * Anything else is refused, so that a file's contents always match its name.
     *
     * @param option the option or argument the path came from, for the message ("--out")
     */
    public static OutputFormat outputFormat(Path out, String option) {
        String name = out.getFileName() == null ? "" : out.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        if (name.endsWith(".pth") || name.endsWith(".pt")) return OutputFormat.PTH;
        if (name.endsWith(".safetensors")) return OutputFormat.SAFETENSORS;
        throw new IllegalArgumentException(option + " " + out + ": cannot tell the output format from the name; "
                + "name it .pth, .pt or .safetensors (.pth and .pt are written as a PyTorch zip)");
    }

    /**
     * Writes tensors in the format the file's extension names (checked with {@link #outputFormat}): .pth in the given
     * dtype (metadata is not stored), .safetensors as F32 with the metadata. Atomic either way.
     */
    public static void writeTensors(Path out, String option, Map<String, HostTensor> tensors, PthWriter.Dtype pthDtype,
                                    Map<String, String> metadata) {
        switch (outputFormat(out, option)) {
            case PTH -> PthWriter.write(out, tensors, pthDtype);
            case SAFETENSORS -> Safetensors.write(out, tensors, metadata);
        }
    }

    /** The ln_x GroupNorm eps to use unless the user says otherwise: what the file implies, else the official 64e-5. */
    public static double defaultGroupNormEps(ModelWeights w) {
        double implied = w.impliedGroupNormEps();
        return Double.isNaN(implied) ? ModelConfig.OFFICIAL_GROUP_NORM_EPS : implied;
    }

    /**
     * Looks at the first bytes. A missing, unreadable or empty file, or a directory, is refused here with a
     * ModelFormatException naming the path.
     */
    public static Format detectFormat(Path file) {
        byte[] head = firstBytes(file, 9);
        if (head.length == 0) {
            throw new ModelFormatException(file + ": file is empty (0 bytes), expected a model file");
        }
        if (startsWith(head, 0x66, 0x6d, 0x67, 0x67)) return Format.RWKV_CPP;   // int32 0x67676d66 little-endian
        if (startsWith(head, 0x50, 0x4b, 0x03, 0x04)) return Format.PYTORCH_ZIP; // "PK\3\4", torch.save's zip format
        // safetensors: u64 header length, then the JSON object. Let the reader report its own errors for anything
        // that starts like one; a file that does not is more likely something else altogether.
        if (head.length == 9 && head[8] == '{') return Format.SAFETENSORS;
        return Format.UNKNOWN;
    }

    private static boolean startsWith(byte[] head, int... prefix) {
        if (head.length < prefix.length) return false;
        for (int i = 0; i < prefix.length; i++) {
            if ((head[i] & 0xff) != prefix[i]) return false;
        }
        return true;
    }

    private static byte[] firstBytes(Path file, int n) {
        if (Files.isDirectory(file)) {
            throw new ModelFormatException(file + ": is a directory, expected a model file");
        }
        try (InputStream in = Files.newInputStream(file)) {
            return in.readNBytes(n);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file + ": model file not found", e);
        } catch (AccessDeniedException e) {
            throw new ModelFormatException(file + ": cannot read the model file (access denied)", e);
        } catch (IOException e) {
            throw new ModelFormatException(file + ": cannot read the model file: " + e.getMessage(), e);
        }
    }

    private static String firstBytesHex(Path file) {
        byte[] head = firstBytes(file, 8);
        StringBuilder sb = new StringBuilder();
        for (byte b : head) {
            if (sb.length() > 0) sb.append(' ');
            sb.append(String.format("%02x", b & 0xff));
        }
        return sb.toString();
    }
}
