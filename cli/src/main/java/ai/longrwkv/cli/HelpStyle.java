package ai.longrwkv.cli;

import picocli.CommandLine;
import picocli.CommandLine.Help;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.UsageMessageSpec;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * How --help looks, for every command at once: each option's default shown after its description (unless the
 * description already says it), and subcommand listings that show the first sentence of each command's
 * description, never a line cut in the middle of a sentence.
 */
final class HelpStyle {
    private HelpStyle() { }

    static void apply(CommandLine root) {
        for (CommandLine cl : LongRwkv.allCommands(root)) {
            cl.getHelpSectionMap().put(UsageMessageSpec.SECTION_KEY_OPTION_LIST, HelpStyle::optionList);
            UsageMessageSpec usage = cl.getCommandSpec().usageMessage();
            usage.description(wrapListings(reflow(usage.description()), usage.width()));
            if (!cl.getSubcommands().isEmpty()) {
                cl.getHelpSectionMap().put(UsageMessageSpec.SECTION_KEY_COMMAND_LIST, HelpStyle::commandList);
            }
        }
    }

    /**
     * Description lines joined where a sentence runs on from one line to the next, so that picocli wraps each
     * paragraph at the usage width instead of breaking every source line separately; blank lines and indented
     * listing lines stay as they are.
     */
    static String[] reflow(String[] lines) {
        List<String> out = new ArrayList<>();
        for (String line : lines) {
            if (!out.isEmpty()) {
                String prev = out.get(out.size() - 1);
                boolean prevOpen = !prev.isBlank() && !prev.startsWith("  ") && !prev.stripTrailing().matches(".*[.:!?]$");
                if (prevOpen && !line.isBlank() && !line.startsWith("  ")) {
                    out.set(out.size() - 1, prev.stripTrailing() + " " + line.strip());
                    continue;
                }
            }
            out.add(line);
        }
        return out.toArray(new String[0]);
    }

    /**
     * Indented listing lines ("  name   what it is") longer than the usage width, wrapped with a hanging indent under
     * the text after the name (picocli would wrap them to column 0).
     */
    static String[] wrapListings(String[] lines, int width) {
        List<String> out = new ArrayList<>();
        for (String line : lines) {
            if (!line.startsWith("  ") || line.length() <= width) {
                out.add(line);
                continue;
            }
            int lead = 0;
            while (lead < line.length() && line.charAt(lead) == ' ') lead++;
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^ +\\S+ {2,}").matcher(line);
            int indent = m.find() && m.end() < width / 2 ? m.end() : lead;
            String pad = " ".repeat(indent);
            StringBuilder cur = new StringBuilder(line.substring(0, indent));
            boolean empty = true;
            for (String word : line.substring(indent).trim().split(" +")) {
                if (!empty && cur.length() + 1 + word.length() > width) {
                    out.add(cur.toString());
                    cur = new StringBuilder(pad);
                    empty = true;
                }
                if (!empty) cur.append(' ');
                cur.append(word);
                empty = false;
            }
            out.add(cur.toString());
        }
        return out.toArray(new String[0]);
    }

    /** The option list, with "Default: X" under every option whose description does not already give its default. */
    static String optionList(Help help) {
        Help.Layout base = help.createDefaultLayout();
        Help.IOptionRenderer renderer = base.optionRenderer();
        Help.IOptionRenderer withDefaults = (option, labels, scheme) -> {
            Help.Ansi.Text[][] rows = renderer.render(option, labels, scheme);
            String dv = shownDefault(option);
            if (dv == null || rows.length == 0) return rows;
            int last = rows[0].length - 1;
            if (rows.length == 1 && rows[0][last].plainString().isBlank()) {
                rows[0][last] = scheme.text("Default: " + dv);
                return rows;
            }
            Help.Ansi.Text[][] out = java.util.Arrays.copyOf(rows, rows.length + 1);
            Help.Ansi.Text[] row = new Help.Ansi.Text[rows[0].length];
            for (int i = 0; i < row.length; i++) row[i] = scheme.text("");
            row[row.length - 1] = scheme.text("Default: " + dv);
            out[rows.length] = row;
            return out;
        };
        Help.Layout layout = new Help.Layout(help.colorScheme(), base.textTable(), withDefaults, base.parameterRenderer());
        return help.optionList(layout, help.createDefaultOptionSort(), help.parameterLabelRenderer());
    }

    /** The default to show for an option, or null: none, a flag, or the description already says it. */
    static String shownDefault(CommandLine.Model.OptionSpec option) {
        if (option.usageHelp() || option.versionHelp() || option.arity().max() == 0) return null;
        String dv = option.defaultValue();
        if (dv == null || dv.isEmpty()) return null;
        String description = String.join(" ", option.description()).toLowerCase(java.util.Locale.ROOT);
        if (description.contains("default")) return null;
        return dv;
    }

    /** The command listing: name and summary sentence, the summary wrapped at the usage width. */
    static String commandList(Help help) {
        Map<String, String> rows = new LinkedHashMap<>();
        for (Map.Entry<String, Help> e : help.subcommands().entrySet()) {
            CommandSpec spec = e.getValue().commandSpec();
            if (spec.usageMessage().hidden()) continue;
            String names = String.join(", ", e.getValue().commandSpec().names());
            rows.putIfAbsent(names, summary(spec));
        }
        if (rows.isEmpty()) return "";
        int nameWidth = rows.keySet().stream().mapToInt(String::length).max().orElse(0);
        int width = help.commandSpec().usageMessage().width();
        int left = 2 + Math.min(nameWidth, 24) + 2;
        Help.TextTable table = Help.TextTable.forColumns(help.colorScheme(),
                new Help.Column(left, 2, Help.Column.Overflow.SPAN),
                new Help.Column(Math.max(20, width - left), 0, Help.Column.Overflow.WRAP));
        table.setAdjustLineBreaksForWideCJKCharacters(help.commandSpec().usageMessage().adjustLineBreaksForWideCJKCharacters());
        for (Map.Entry<String, String> r : rows.entrySet()) {
            table.addRowValues(help.colorScheme().commandText(r.getKey()), help.colorScheme().text(r.getValue()));
        }
        return table.toString();
    }

    /**
     * The command's summary for listings: its header if it has one, else the first sentence of its description
     * (up to the first '.', '?' or '!' that ends a sentence outside brackets and quotes).
     */
    static String summary(CommandSpec spec) {
        String[] header = spec.usageMessage().header();
        if (header.length > 0 && !header[0].isBlank()) return header[0].strip();
        List<String> lines = new ArrayList<>();
        for (String line : spec.usageMessage().description()) {
            if (line.isBlank() || !lines.isEmpty() && line.startsWith("  ")) break;   // a paragraph or a listing starts
            lines.add(line.strip());
        }
        return firstSentence(String.join(" ", lines));
    }

    static String firstSentence(String text) {
        int depth = 0;
        boolean quoted = false;
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '(' || c == '[') depth++;
            else if ((c == ')' || c == ']') && depth > 0) depth--;
            else if (c == '\'' && (i == 0 || !Character.isLetter(text.charAt(i - 1)))) quoted = true;
            else if (c == '\'' && quoted && (i + 1 == text.length() || !Character.isLetter(text.charAt(i + 1)))) quoted = false;
            else if ((c == '.' || c == '?' || c == '!') && depth == 0 && !quoted
                    && (i + 1 == text.length() || text.charAt(i + 1) == ' ')
                    && !(i >= 3 && text.startsWith("e.g", i - 3)) && !(i >= 3 && text.startsWith("i.e", i - 3))) {
                return text.substring(0, i + 1);
            }
        }
        String t = text.strip().replaceAll("[\\s,;:]+$", "");   // a sentence that introduces a listing ends in ':'
        return t.isEmpty() ? t : t.endsWith(".") ? t : t + ".";
    }
}
