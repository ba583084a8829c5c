DROP FUNCTION city_revenue(text);
DROP TABLE rides;
DROP TABLE vehicles;
