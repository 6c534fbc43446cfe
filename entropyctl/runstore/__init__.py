"""The run store (`store`): runs/<sweep>/<run>/ on disk, the contract every command reads and
writes; and the metric glossary (`glossary`), the definition of every logged key. No torch."""
