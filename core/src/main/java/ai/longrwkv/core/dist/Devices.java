package ai.longrwkv.core.dist;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/** --devices, as {@code plan}, {@code finetune} and {@code state-tune} read it. */
public final class Devices {
    private Devices() { }

    /**
     * A count N (the first N GPUs: 0 .. N-1; a single 0 is GPU 0), or a list of distinct GPU ids such as 0,1,2,3.
     * To use one particular GPU, make it the only visible one (CUDA_VISIBLE_DEVICES=2) or list it with another.
     */
    public static List<Integer> parse(String text) {
        String t = text.trim();
        String bad = "--devices must be a count such as 8 or GPU ids such as 0,1,2,3, got '" + text + "'";
        if (t.contains(",")) {
            Set<Integer> ids = new LinkedHashSet<>();
            for (String part : t.split(",", -1)) {
                int id;
                try {
                    id = Integer.parseInt(part.trim());
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(bad);
                }
                if (id < 0) throw new IllegalArgumentException("--devices: GPU ids are 0 or more, got " + id + " in '" + text + "'");
                if (!ids.add(id)) throw new IllegalArgumentException("--devices lists GPU " + id + " twice in '" + text + "'");
            }
            return List.copyOf(ids);
        }
        int n;
        try {
            n = Integer.parseInt(t);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(bad);
        }
        if (n < 0 || n > 65536) throw new IllegalArgumentException("--devices must be 0..65536, got " + n);
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < Math.max(n, 1); i++) ids.add(i);
        return ids;
    }
}
