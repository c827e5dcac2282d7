package ai.longrwkv.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 13, item 2: --help of every command and subcommand. Every option has a description, defaults are shown,
 * summaries in the command listings are whole sentences, and no help points at developer-only documents.
 */
class HelpTest {

    static List<CommandLine> commands() {
        return LongRwkv.allCommands(LongRwkv.commandLine());
    }

    @Test
    void everyOptionOfEveryCommandHasADescription() {
        List<String> missing = new ArrayList<>();
        for (CommandLine cl : commands()) {
            for (OptionSpec o : cl.getCommandSpec().options()) {
                if (String.join(" ", o.description()).isBlank()) missing.add(cl.getCommandSpec().qualifiedName() + " " + o.longestName());
            }
        }
        assertEquals(List.of(), missing, "options without a description");
    }

    @Test
    void everyOptionWithADefaultShowsItInHelp() {
        List<String> missing = new ArrayList<>();
        for (CommandLine cl : commands()) {
            String help = cl.getUsageMessage(CommandLine.Help.Ansi.OFF);
            for (OptionSpec o : cl.getCommandSpec().options()) {
                if (o.hidden() || o.arity().max() == 0 || o.defaultValue() == null || o.defaultValue().isEmpty()) continue;
                String described = String.join(" ", o.description()).toLowerCase();
                boolean shown = described.contains("default") ? true : help.contains("Default: " + o.defaultValue());
                if (!shown) missing.add(cl.getCommandSpec().qualifiedName() + " " + o.longestName());
            }
        }
        assertEquals(List.of(), missing, "options whose default is not in --help");
        String matmul = CliTestSupport.run("bench", "matmul", "--help").out().replaceAll("\\s+", " ");
        assertTrue(matmul.contains("(default: 1024)") && matmul.contains("(default: 65536)"), matmul);
    }

    @Test
    void everySubcommandSummaryInAListingIsAWholeSentence() {
        List<String> cut = new ArrayList<>();
        for (CommandLine cl : commands()) {
            if (cl.getSubcommands().isEmpty()) continue;
            String help = cl.getUsageMessage(CommandLine.Help.Ansi.OFF);
            int at = help.indexOf("\nCommands:\n");
            assertTrue(at >= 0, cl.getCommandSpec().qualifiedName() + " lists its commands:\n" + help);
            List<String> entries = new ArrayList<>();
            for (String line : help.substring(at + "\nCommands:\n".length()).split("\n")) {
                if (line.isBlank()) break;
                if (line.startsWith("  ") && !line.startsWith("   ")) entries.add(line.strip());   // a new entry
                else if (!entries.isEmpty()) entries.set(entries.size() - 1, entries.get(entries.size() - 1) + " " + line.strip());
            }
            assertEquals(cl.getSubcommands().values().stream().map(CommandLine::getCommandName).distinct().count(), entries.size(),
                    cl.getCommandSpec().qualifiedName() + ": " + entries);
            for (String e : entries) {
                if (!e.matches(".*[.!?]$") || e.matches(".*[,;:]\\s*\\S*$")) cut.add(cl.getCommandSpec().qualifiedName() + ": " + e);
            }
        }
        assertEquals(List.of(), cut, "summaries cut in the middle of a sentence");
        for (CommandLine cl : commands()) {
            String s = HelpStyle.summary(cl.getCommandSpec());
            assertTrue(s.endsWith(".") || s.endsWith("?") || s.endsWith("!"), cl.getCommandSpec().qualifiedName() + ": " + s);
        }
    }

    @Test
    void noHelpMentionsDeveloperOnlyDocumentsOrUnfinishedWork() {
        for (CommandLine cl : commands()) {
            String help = cl.getUsageMessage(CommandLine.Help.Ansi.OFF);
            String name = cl.getCommandSpec().qualifiedName();
            assertFalse(help.contains("../shared"), name + ":\n" + help);
            assertFalse(help.contains("has not landed"), name + ":\n" + help);
        }
    }

    @Test
    void descriptionsAreWrappedAsParagraphsNotLineByLine() {
        String help = CliTestSupport.run("eval", "position-loss", "--help").out();
        for (String line : help.split("\n")) {
            assertFalse(line.strip().equals("tokens, one curve per --model (each with its own optional --state). A curve"), help);
        }
        assertEquals(List.of("One.", "Two continues here.", "", "  listing"),
                List.of(HelpStyle.reflow(new String[]{"One.", "Two continues", "here.", "", "  listing"})));
        assertEquals(List.of("  name  aaa bbb ccc", "        ddd"), List.of(HelpStyle.wrapListings(new String[]{"  name  aaa bbb ccc ddd"}, 20)));
        String synth = CliTestSupport.run("data", "synth", "--help").out();
        for (String line : synth.split("\n")) assertFalse(line.startsWith("is: {value}"), "listing wrapped under its text:\n" + synth);
        assertEquals("Run a model (or, e.g. text) fast.", HelpStyle.firstSentence("Run a model (or, e.g. text) fast. Then more."));
    }
}
