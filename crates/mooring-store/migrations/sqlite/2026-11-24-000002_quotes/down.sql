DROP TABLE quote_fee_details;
DROP TABLE quotes;
