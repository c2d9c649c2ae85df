-- Where a fill's fees come from: the venue's model (paper), Kite's contract note, or an estimate
-- standing in for it. Rows written before this column are the model's.
ALTER TABLE fills ADD COLUMN fees_source TEXT NOT NULL DEFAULT 'model';
-- The depository's charge on a delivery sell (once per scrip and day), apart from the contract
-- note's lines and included in fees_total.
ALTER TABLE fills ADD COLUMN dp_charges TEXT NOT NULL DEFAULT '0';
